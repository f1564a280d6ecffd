// Package consumers holds what takes messages off the queues and moves runs forward: the one
// consumer loop (Loop), and the handlers it runs: the worker (claims an order, runs it, delivers
// its result), the launcher (claims an order and starts it on CodeBuild or SSM), the orchestrator (records each result and
// wakes what depended on it), the sweeper (repairs whatever a crash or a lost message left
// behind: orders past their deadline, orders stuck queued, waiting orders whose dependencies
// ended, runs past their job deadline or never finalized) and the dead-letter consumer (an order
// message that died becomes a failed result, so its run still ends).
//
// Which handler consumes which queue is said once, in package assembly's route table. Every
// consumer is idempotent: a message may come twice, or after the move it asks for was made
// by someone else, and then it does nothing. A message is deleted only after its work is written.
package consumers
