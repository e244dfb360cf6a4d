"""A local stand-in for the octopusx video API, with fault injection."""
