package queues

import "time"

// The engine's queues. Every one has a dead-letter queue named with DeadLetterSuffix.
const (
	Intake           = "intake"
	Results          = "results"
	DeadLetterSuffix = "-dlq"
	// MaxReceivesDefault is how many receives a message gets before it is dead-lettered.
	MaxReceivesDefault = 5
)

// Orders names the queue of an execution target: orders-lambda, orders-codebuild, orders-ssm.
func Orders(target string) string { return "orders-" + target }

// Topology returns the Spec of every queue the engine uses, dead-letter queues included. It is
// the one list that the embedded adapter, the emulator set-up and infra/ are checked against.
func Topology() []Spec {
	main := []Spec{
		{Name: Intake, Visibility: 2 * time.Minute},
		{Name: Orders("lambda"), Visibility: 2 * time.Minute},
		{Name: Orders("codebuild"), Visibility: 2 * time.Minute},
		{Name: Orders("ssm"), Visibility: 2 * time.Minute},
		{Name: Results, Visibility: time.Minute},
	}
	var out []Spec
	for _, s := range main {
		s.DeadLetter = s.Name + DeadLetterSuffix
		s.MaxReceives = MaxReceivesDefault
		out = append(out, s, Spec{Name: s.DeadLetter, Visibility: time.Minute})
	}
	return out
}
