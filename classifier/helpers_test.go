package classifier

import (
	"fmt"
	"math/rand"
)

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

func rnd(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }
