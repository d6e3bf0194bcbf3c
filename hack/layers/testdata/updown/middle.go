package updown

// Middle uses shape, declared below it, and Top, declared above it.
func Middle() int { return shape{sides: 3}.sides + Top() }
