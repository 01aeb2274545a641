package classifier

import (
	"flag"
	"fmt"
	"math/rand"
)

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

var speedFlag = flag.Bool("speed", false, "run timing tests")

func rnd(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }
