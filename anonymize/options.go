package anonymize

// Options selects the PS3.15 Annex E options applied on top of the Basic
// Application Level Confidentiality Profile, plus the burned-in-text policy.
// The zero value is the basic profile alone with the default burned-in
// policy (reject). mapstructure tags let the CLI decode it from viper config.
type Options struct {
	// RetainLongitudinalModifiedDates applies "Retain Longitudinal Temporal
	// Information with Modified Dates": dates and date-times that the option
	// marks C are shifted back by a per-patient number of days derived from
	// the secret, so intervals within one patient survive; times are kept.
	RetainLongitudinalModifiedDates bool `mapstructure:"retain_longitudinal_modified_dates"`
	// RetainPatientCharacteristics applies "Retain Patient Characteristics"
	// (sex, age, size, weight, ...; its free-text attributes are cleaned).
	RetainPatientCharacteristics bool `mapstructure:"retain_patient_characteristics"`
	// RetainDeviceIdentity applies "Retain Device Identity".
	RetainDeviceIdentity bool `mapstructure:"retain_device_identity"`
	// RetainInstitutionIdentity applies "Retain Institution Identity".
	RetainInstitutionIdentity bool `mapstructure:"retain_institution_identity"`
	// RetainUIDs applies "Retain UIDs": instance UIDs are kept as they are.
	RetainUIDs bool `mapstructure:"retain_uids"`
	// CleanDescriptors applies "Clean Descriptors Option": free text that
	// the option marks C is kept only when every word of it is in the
	// vocabulary (built-in radiology words plus CleanVocabulary); otherwise
	// the basic-profile action applies.
	CleanDescriptors bool `mapstructure:"clean_descriptors"`
	// CleanVocabulary adds words (case-insensitive) to the clean vocabulary.
	CleanVocabulary []string `mapstructure:"clean_vocabulary"`
	// RetainSafePrivate applies "Retain Safe Private Option": the private
	// attributes listed in SafePrivate are kept with their creators; every
	// other private attribute is removed. With an empty list it keeps none.
	RetainSafePrivate bool          `mapstructure:"retain_safe_private"`
	SafePrivate       []PrivateAttr `mapstructure:"safe_private"`

	// AllowBurnedIn accepts instances whose Burned In Annotation is YES.
	// Default false: they are rejected with ErrBurnedIn, since the header
	// profile cannot clean pixels.
	AllowBurnedIn bool `mapstructure:"allow_burned_in"`
	// AllowUndeclaredBurnedIn accepts instances of BurnedInSOPClasses that
	// lack Burned In Annotation (or leave it empty). Default false: rejected.
	AllowUndeclaredBurnedIn bool `mapstructure:"allow_undeclared_burned_in"`
	// BurnedInSOPClasses are the SOP classes that often carry burned-in
	// text. Nil means DefaultBurnedInSOPClasses.
	BurnedInSOPClasses []string `mapstructure:"burned_in_sop_classes"`
}

// PrivateAttr names one private attribute the safe list keeps: the element
// (gggg,xxEE) whose block xx is reserved by Creator in group Group.
type PrivateAttr struct {
	Creator string `mapstructure:"creator"`
	Group   uint16 `mapstructure:"group"`
	Element uint8  `mapstructure:"element"` // the low byte EE
}

// DefaultBurnedInSOPClasses are storage SOP classes whose images are often
// screenshots or photographs with text in the pixels: secondary capture,
// ultrasound, visible light and ophthalmic photography.
var DefaultBurnedInSOPClasses = []string{
	"1.2.840.10008.5.1.4.1.1.7",        // Secondary Capture Image
	"1.2.840.10008.5.1.4.1.1.7.1",      // Multi-frame Single Bit SC
	"1.2.840.10008.5.1.4.1.1.7.2",      // Multi-frame Grayscale Byte SC
	"1.2.840.10008.5.1.4.1.1.7.3",      // Multi-frame Grayscale Word SC
	"1.2.840.10008.5.1.4.1.1.7.4",      // Multi-frame True Color SC
	"1.2.840.10008.5.1.4.1.1.6",        // Ultrasound Image (retired)
	"1.2.840.10008.5.1.4.1.1.6.1",      // Ultrasound Image
	"1.2.840.10008.5.1.4.1.1.6.2",      // Enhanced US Volume
	"1.2.840.10008.5.1.4.1.1.3",        // Ultrasound Multi-frame Image (retired)
	"1.2.840.10008.5.1.4.1.1.3.1",      // Ultrasound Multi-frame Image
	"1.2.840.10008.5.1.4.1.1.77.1.1",   // VL Endoscopic Image
	"1.2.840.10008.5.1.4.1.1.77.1.1.1", // Video Endoscopic Image
	"1.2.840.10008.5.1.4.1.1.77.1.2",   // VL Microscopic Image
	"1.2.840.10008.5.1.4.1.1.77.1.4",   // VL Photographic Image
	"1.2.840.10008.5.1.4.1.1.77.1.4.1", // Video Photographic Image
	"1.2.840.10008.5.1.4.1.1.77.1.5.1", // Ophthalmic Photography 8 Bit
	"1.2.840.10008.5.1.4.1.1.77.1.5.2", // Ophthalmic Photography 16 Bit
}

// Code is one coded entry (CID 7050 for the de-identification method).
type Code struct {
	Value   string // Code Value (0008,0100)
	Scheme  string // Coding Scheme Designator (0008,0102)
	Meaning string // Code Meaning (0008,0104)
}

// CID 7050 "De-identification Method" codes of the profile and the options
// this package implements.
var (
	CodeBasicProfile                = Code{"113100", "DCM", "Basic Application Confidentiality Profile"}
	CodeCleanDescriptors            = Code{"113105", "DCM", "Clean Descriptors Option"}
	CodeRetainLongitudinalModified  = Code{"113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option"}
	CodeRetainPatientCharacteristic = Code{"113108", "DCM", "Retain Patient Characteristics Option"}
	CodeRetainDeviceIdentity        = Code{"113109", "DCM", "Retain Device Identity Option"}
	CodeRetainUIDs                  = Code{"113110", "DCM", "Retain UIDs Option"}
	CodeRetainSafePrivate           = Code{"113111", "DCM", "Retain Safe Private Option"}
	CodeRetainInstitutionIdentity   = Code{"113112", "DCM", "Retain Institution Identity Option"}
)

// methodCodes lists the CID 7050 codes for opts, basic profile first.
func (o *Options) methodCodes() []Code {
	codes := []Code{CodeBasicProfile}
	add := func(on bool, c Code) {
		if on {
			codes = append(codes, c)
		}
	}
	add(o.CleanDescriptors, CodeCleanDescriptors)
	add(o.RetainLongitudinalModifiedDates, CodeRetainLongitudinalModified)
	add(o.RetainPatientCharacteristics, CodeRetainPatientCharacteristic)
	add(o.RetainDeviceIdentity, CodeRetainDeviceIdentity)
	add(o.RetainUIDs, CodeRetainUIDs)
	add(o.RetainSafePrivate, CodeRetainSafePrivate)
	add(o.RetainInstitutionIdentity, CodeRetainInstitutionIdentity)
	return codes
}

// enabled reports which option columns of the table are switched on.
func (o *Options) enabled() [numOptions]bool {
	var on [numOptions]bool
	on[optSafePrivate] = o.RetainSafePrivate
	on[optUIDs] = o.RetainUIDs
	on[optDeviceIdentity] = o.RetainDeviceIdentity
	on[optInstitutionIdentity] = o.RetainInstitutionIdentity
	on[optPatientCharacteristics] = o.RetainPatientCharacteristics
	on[optLongModifiedDates] = o.RetainLongitudinalModifiedDates
	on[optCleanDescriptors] = o.CleanDescriptors
	return on
}
