package ingest

// Kill stops the appliers the way a crash would: no drain, no final
// snapshot.
func (s *Service) Kill() {
	close(s.stop)
	<-s.done
}
