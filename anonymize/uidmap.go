package anonymize

// MapUID returns the UID this Anonymizer writes in place of orig: the HMAC
// pseudonym, or orig itself under Retain UIDs when it is a valid UID. Callers use it to relate
// references the profile removes (e.g. Source Image Sequence) to the
// de-identified instances, without keeping the original UID anywhere.
func (a *Anonymizer) MapUID(orig string) string {
	if a.opts.RetainUIDs && ValidUID(trimValue(orig)) {
		return trimValue(orig)
	}
	return PseudonymUID(a.secret, orig)
}
