package domain

import (
	"cmp"
	"fmt"
	"slices"
)

// Plan turns a normalized, valid job into the records of its orders, all waiting: order numbers
// are 1-based positions in the job, and Deps and Dependents hold order numbers, sorted. It
// returns a *ValidationError when the dependency graph cannot be run (duplicate or unknown
// queue_ids, self-dependencies, cycles); call Validate first to hear about everything else.
func Plan(j Job, runID, traceID string) ([]OrderRecord, error) {
	if problems := graphProblems(j.Orders); len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	edges := dependencyEdges(j.Orders, queueIndex(j.Orders))
	records := make([]OrderRecord, len(j.Orders))
	for i, o := range j.Orders {
		records[i] = OrderRecord{
			RunID:         runID,
			OrderNum:      i + 1,
			TraceID:       traceID,
			OrderName:     o.OrderName,
			QueueID:       o.QueueID,
			Target:        o.ExecutionTarget,
			MustSucceed:   o.Succeed(),
			PresignExpiry: j.PresignExpiry,
			Timeout:       o.Timeout,
			Status:        OrderWaiting,
		}
		for _, d := range edges[i] {
			records[i].Deps = append(records[i].Deps, d+1)
		}
	}
	// Walking orders in ascending position keeps every Dependents list sorted.
	for i := range edges {
		for _, d := range edges[i] {
			records[d].Dependents = append(records[d].Dependents, i+1)
		}
	}
	return records, nil
}

// Ready returns, in ascending order, the numbers of the orders that depend on nothing: the ones
// a new run queues at once.
func Ready(orders []OrderRecord) []int {
	var ready []int
	for _, o := range orders {
		if len(o.Deps) == 0 {
			ready = append(ready, o.OrderNum)
		}
	}
	slices.Sort(ready)
	return ready
}

// Wake is what to do with a waiting order once one of its dependencies changed.
type Wake int

const (
	WakeWait  Wake = iota // a dependency has not ended: leave the order waiting
	WakeQueue             // every dependency ended and none blocks: queue the order
	WakeSkip              // a dependency that must succeed did not: the order ends skipped
)

func (w Wake) String() string {
	switch w {
	case WakeWait:
		return "wait"
	case WakeQueue:
		return "queue"
	case WakeSkip:
		return "skip"
	}
	return fmt.Sprintf("Wake(%d)", int(w))
}

// DecideWake decides the fate of a waiting order from the records of its dependencies. It waits
// while any dependency has not ended, so an order is skipped only once its whole upstream has
// settled. It skips when a dependency with must_succeed failed, timed out or was itself skipped;
// a failure of a dependency with must_succeed false is tolerated and the order runs. The reason
// names the dependency (the lowest-numbered when several qualify) and is empty for WakeQueue.
func DecideWake(deps []OrderRecord) (Wake, string) {
	sorted := slices.SortedFunc(slices.Values(deps), func(a, b OrderRecord) int {
		return cmp.Compare(a.OrderNum, b.OrderNum)
	})
	for _, d := range sorted {
		if !d.Status.Terminal() {
			return WakeWait, fmt.Sprintf("waiting for dependency %q", d.OrderName)
		}
	}
	for _, d := range sorted {
		if !d.MustSucceed {
			continue
		}
		switch d.Status {
		case OrderFailed:
			return WakeSkip, fmt.Sprintf("dependency %q failed", d.OrderName)
		case OrderTimedOut:
			return WakeSkip, fmt.Sprintf("dependency %q timed out", d.OrderName)
		case OrderSkipped:
			return WakeSkip, fmt.Sprintf("dependency %q was skipped", d.OrderName)
		}
	}
	return WakeQueue, ""
}

// queueIndex maps each queue_id to the first order (0-based) that has it; later duplicates are
// reported by Validate and never become dependency targets.
func queueIndex(orders []Order) map[string]int {
	index := make(map[string]int, len(orders))
	for i, o := range orders {
		if _, dup := index[o.QueueID]; !dup {
			index[o.QueueID] = i
		}
	}
	return index
}

// dependencyEdges lists, for each order, the orders (0-based, ascending) it depends on. Unknown
// queue_ids, self-dependencies and repeats are left out: Validate reports them on their own.
func dependencyEdges(orders []Order, index map[string]int) [][]int {
	edges := make([][]int, len(orders))
	for i, o := range orders {
		for _, dep := range o.Dependencies {
			d, ok := index[dep]
			if !ok || d == i || slices.Contains(edges[i], d) {
				continue
			}
			edges[i] = append(edges[i], d)
		}
		slices.Sort(edges[i])
	}
	return edges
}

// dependencyCycles finds one cycle in every group of orders that wait on each other (a strongly
// connected component of two or more orders), as queue_ids in dependency order: each depends on
// the next, and the last is the first again. Each cycle is the shortest one through the group's
// smallest queue_id and starts there, and the cycles are sorted by that id, so the same job
// always gets the same message.
func dependencyCycles(orders []Order) [][]string {
	edges := dependencyEdges(orders, queueIndex(orders))
	id := func(i int) string { return orders[i].QueueID }
	byID := func(a, b int) int { return cmp.Or(cmp.Compare(id(a), id(b)), cmp.Compare(a, b)) }

	var cycles [][]string
	for _, group := range stronglyConnected(edges) {
		if len(group) < 2 {
			continue
		}
		in := make(map[int]bool, len(group))
		for _, n := range group {
			in[n] = true
		}
		start := slices.MinFunc(group, byID)
		// Breadth-first from start along dependencies, neighbours by queue_id, until the walk
		// gets back to start; parent[m] is the order that reached m, so it depends on m.
		parent := map[int]int{}
		for queue := []int{start}; len(queue) > 0; {
			n := queue[0]
			queue = queue[1:]
			if _, back := parent[start]; back {
				break
			}
			next := slices.Clone(edges[n])
			slices.SortFunc(next, byID)
			for _, m := range next {
				if _, seen := parent[m]; in[m] && !seen {
					parent[m] = n
					queue = append(queue, m)
				}
			}
		}
		path := []string{id(start)}
		for n := parent[start]; n != start; n = parent[n] {
			path = append(path, id(n))
		}
		path = append(path, id(start))
		slices.Reverse(path)
		cycles = append(cycles, path)
	}
	slices.SortFunc(cycles, func(a, b []string) int { return cmp.Compare(a[0], b[0]) })
	return cycles
}

// stronglyConnected returns the strongly connected components of a graph given as adjacency
// lists, by Tarjan's algorithm (Tarjan, "Depth-first search and linear graph algorithms", 1972).
func stronglyConnected(edges [][]int) [][]int {
	const unvisited = -1
	index := make([]int, len(edges))
	low := make([]int, len(edges))
	onStack := make([]bool, len(edges))
	for i := range index {
		index[i] = unvisited
	}
	var stack []int
	var groups [][]int
	next := 0
	var visit func(n int)
	visit = func(n int) {
		index[n], low[n] = next, next
		next++
		stack = append(stack, n)
		onStack[n] = true
		for _, m := range edges[n] {
			switch {
			case index[m] == unvisited:
				visit(m)
				low[n] = min(low[n], low[m])
			case onStack[m]:
				low[n] = min(low[n], index[m])
			}
		}
		if low[n] != index[n] {
			return
		}
		var group []int
		for {
			m := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[m] = false
			group = append(group, m)
			if m == n {
				break
			}
		}
		groups = append(groups, group)
	}
	for n := range edges {
		if index[n] == unvisited {
			visit(n)
		}
	}
	return groups
}
