"""The portal edge: the HTTP client of the city portal and its bounded transport."""
