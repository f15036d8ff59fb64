"""Bus: bytes from the master (Unix socket, TCP, ZeroMQ, a recording) and the frames in them."""
