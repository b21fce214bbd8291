"""Image upload, validation, renditions, storage; packing slips."""
