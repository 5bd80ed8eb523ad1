"""The scan path, one room per step; data flows one way:

    walk -> prepare -> analyze -> a scheduler (local_scheduler | ray_scheduler) -> run -> finish

- walk: the folder's entries (and the link rules), each a file to read or a NotRead row.
- prepare: decode one file, hash it (pHash, dct256, PDQ) and keep what judging it needs (evidence).
- analyze: the Analyzer runs the models (faces and eyes, pixel detectors, fusion) and judges each file
  (judge_file: hash lists, verdict and reasons at the mode).
- schedulers: a registry naming the schedulers; local_scheduler (worker processes) and ray_scheduler
  (Ray Data) each call prepare and the Analyzer, and neither imports the other.
- run: run_scan, the scan's state (resume, reruns judged again) and its summary.
- finish: grouping, the persistent index, the results files; the report is written by run_scan.
- checks: every setting, folder and output checked before any work.
The public API (facecheck.api) and the CLI (facecheck.cli) are thin layers over run_scan and the Analyzer.
"""
