package preprocess

// Geometry says where a source image lands in the Size x Size plane: the
// thumbnail's size and its offset on the canvas. Localisation uses it to
// map boxes found on the plane back to the original image's pixels.
type Geometry struct {
	SrcW, SrcH     int // source image
	ThumbW, ThumbH int // after Thumbnail
	OffX, OffY     int // top-left of the thumbnail on the plane (Pad)
}

// PlaneGeometry returns the geometry Plane uses for a w x h source.
func PlaneGeometry(w, h int) Geometry { return PlaneGeometrySized(w, h, Size) }

// PlaneGeometrySized returns the geometry of a size x size plane.
func PlaneGeometrySized(w, h, size int) Geometry {
	tw, th, _ := ThumbnailSize(w, h, size)
	return Geometry{SrcW: w, SrcH: h, ThumbW: tw, ThumbH: th, OffX: floorDiv(size-tw, 2), OffY: floorDiv(size-th, 2)}
}

// ToSource maps a point of the plane (pixel edges: 0..Size) to the source
// image, clamped to it.
func (g Geometry) ToSource(x, y float64) (float64, float64) {
	sx := (x - float64(g.OffX)) * float64(g.SrcW) / float64(g.ThumbW)
	sy := (y - float64(g.OffY)) * float64(g.SrcH) / float64(g.ThumbH)
	return min(max(sx, 0), float64(g.SrcW)), min(max(sy, 0), float64(g.SrcH))
}

// FromSource maps a source point to the plane (the inverse of ToSource
// inside the image).
func (g Geometry) FromSource(x, y float64) (float64, float64) {
	return x*float64(g.ThumbW)/float64(g.SrcW) + float64(g.OffX), y*float64(g.ThumbH)/float64(g.SrcH) + float64(g.OffY)
}
