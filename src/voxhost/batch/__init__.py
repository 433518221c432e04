"""`voxhost batch`: many files transcribed into output files, on the local workers or on Ray Data.

`job.py` is the command's run (inputs, outputs, progress, resuming); `files.py` is one file's part
(decode, transcribe, render), shared with the Ray Data actors of `voxhost.scale.data`, which import
only that module.
"""
