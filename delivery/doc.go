// Package delivery sends fracd's results back to the hospital's PACS as DICOM:
// a Comprehensive SR following TID 1500 (finding Fracture of bone, its
// presence, fracd's category, the probability, each localisation box as a
// closed SCOORD POLYLINE on the original instance, the algorithm as TID 4019,
// Contributing Equipment as IHE AI Results asks) and a secondary capture of
// the rendered original with the result burned in, both in new series of the
// original study.
//
// These objects carry the hospital's ORIGINAL identifiers, since they go back
// to its own PACS. They exist only in the outbox folder (0700, files 0600)
// until delivered; the database keeps only the de-identified key, the state,
// attempts, a reason from a fixed vocabulary and the times; logs name
// deliveries by the de-identified SOP Instance UID.
//
// The state machine of one object (one row of deliveries, one file):
//
//	Enqueue:  write file (fsync, rename) -> row pending (+ audit delivery.queued)
//	worker:   row sending, attempts+1 (committed) -> storescu
//	          success: row delivered (+ audit) committed -> file removed
//	          failure: row pending, next attempt after an exponential backoff;
//	                   after MaxAttempts row failed (+ audit), file kept
//	start-up: sending -> pending (interrupted); delivered with a file -> file removed
//
// The guarantee, with kill -9 at any point: no object is lost (a row exists
// only once its file is durable, and the file goes only after the row says
// delivered); an object whose acknowledgement was recorded (row delivered) is
// never sent again. The one window is between storescu receiving the C-STORE
// response and the delivered row committing (storescu's exit and one SQLite
// commit): a crash there resends the object at the next start, so delivery
// is at-least-once with at most one duplicate per crash (one worker, one
// object per association). The duplicate is the same object (the same SOP
// Instance UID, from the site secret), which a PACS stores once. storescu
// dies with the daemon (Pdeathsig), so no orphaned sender completes a
// transfer that nobody records.
package delivery
