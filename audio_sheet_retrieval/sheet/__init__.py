"""A user's score pages: loading them, finding their staff systems, unrolling them.

:mod:`.pages` reads PNG/JPEG images and PDF pages; :mod:`.staff_detection`
finds staff lines and systems with classical (learning-free) image analysis
and unrolls them into one strip the way the data pipeline does.
"""
