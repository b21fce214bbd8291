"""Live sessions: a streamer's show, its flash-price listings and their allotments."""
