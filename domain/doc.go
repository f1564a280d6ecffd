// Package domain holds what iac-ci is about, with no I/O: the job and its orders as callers send
// them, their validation, the dependency graph, the identifiers of a run, the order and run state
// machines, and the records the engine keeps (runs, orders, events, results).
//
// Everything here is a plain type or a pure function; every other package may import domain, and
// domain imports nothing of iac-ci's.
package domain
