package dicomio

import "github.com/suyashkumar/dicom/pkg/tag"

// PatientID returns Patient ID (0010,0020) as stored. For a de-identified
// archive file that is the site's pseudonym, which training uses to keep a
// patient's images in one split; for an original it is an identifier and
// must never be logged or stored.
func (f *File) PatientID() string { return f.str(tag.PatientID) }

// StudyInstanceUID returns Study Instance UID (0020,000D) as stored.
func (f *File) StudyInstanceUID() string { return f.str(tag.StudyInstanceUID) }
