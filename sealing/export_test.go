package sealing

// OpenerLen reports how many identities and data keys o keeps.
func OpenerLen(o *Opener) (identities, dataKeys int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ids), len(o.keys)
}
