"""Running teams: sessions (one team on one problem), the scheduler that keeps every independent
request in flight, generation (one turn's requests), token accounting and transcripts.
"""
