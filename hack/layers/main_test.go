package main

import (
	"reflect"
	"testing"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		name  string
		order []string
		want  []string
	}{{
		name:  "every reference points down",
		order: []string{"middle.go", "top.go", "bottom.go"},
	}, {
		name:  "a file uses one above it",
		order: []string{"top.go", "middle.go", "bottom.go"},
		want:  []string{"middle.go uses Top from top.go, above it"},
	}, {
		name:  "a type and a field used from below",
		order: []string{"bottom.go", "middle.go", "top.go"},
		want: []string{
			"middle.go uses shape, sides from bottom.go, above it",
			"top.go uses helper from bottom.go, above it",
		},
	}, {
		name:  "files the order misses or invents",
		order: []string{"middle.go", "top.go", "gone.go"},
		want:  []string{"bottom.go is not in the order", "gone.go is in the order but not in the package"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := check("./testdata/updown", tc.order)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
