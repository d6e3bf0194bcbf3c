package podgroup

// TruncateNote keeps an event note under the API's 1kB limit, marking the
// cut.
func TruncateNote(s string) string {
	const limit = 1000
	if len(s) <= limit {
		return s
	}
	return s[:limit-3] + "..."
}
