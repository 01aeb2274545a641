// Package dicomio reads and writes DICOM files for fracd and turns their
// pixel data into stored values and 8-bit grayscale renderings.
//
// Parsing is built on github.com/suyashkumar/dicom, but dicomio first walks
// the raw bytes itself: it finds the file meta group, decides the transfer
// syntax (refusing unknown ones instead of guessing), checks every element
// length against the bytes present and records the encapsulated pixel data
// layout (Basic Offset Table, fragments). Only then does suyashkumar build the
// Dataset, with pixel data left unprocessed so a de-identified dataset can be
// written back with byte-identical pixel data.
//
// Every exported entry point recovers from panics and names a file only by
// the sha256 of its content, never by anything read from inside it. Values
// read from a file (a transfer syntax, a SOP class, a modality) reach errors
// and summaries only when they are valid UIDs or code strings (SafeUID,
// SafeCode); otherwise a fixed word stands in.
package dicomio
