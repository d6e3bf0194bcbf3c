package updown

type shape struct{ sides int }

func helper() int { return 2 }
