"""Development and test stack: embedded services, the process supervisor behind `./run`."""
