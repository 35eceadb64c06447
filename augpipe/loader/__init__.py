"""The multiprocess loader: ``augpipe.Loader`` (loader.py).

order.py (epoch order, rank partition), shm.py (shared-memory slot ring), pool.py and
worker.py (worker processes), device.py (torch conversion and GPU transfer), options.py
(validation of the output options).  Nothing here imports torch unless torch output is used.
"""
