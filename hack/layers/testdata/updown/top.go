package updown

// Top uses bottom's helper: a reference down the order.
func Top() int { return helper() + 1 }
