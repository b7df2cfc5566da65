package ingest

import "time"

// Kill stops the appliers the way a crash would: no drain, no final
// snapshot.
func (s *Service) Kill() {
	close(s.stop)
	<-s.done
}

// SetDeadLetterPolicy replaces the dead-letter tries' timeout, backoff and
// breaker cool-down (tests shorten them). Call before Start.
func (s *Service) SetDeadLetterPolicy(timeout, backoff, coolDown time.Duration) {
	s.letters = newLetterPolicy(timeout, backoff, coolDown)
}
