"""Studies per second of `mri_dino_check --headers-only`, `mri_dino_check` and `mri_dino_preprocess` on a
PACS-style DICOM export, side by side with converting the same studies with the dcm2niix command alone,
in one run, with the ratios.

    PYTHONPATH=. python bench/dicom_vs_dcm2niix.py [--n 20] [--workers 1] [--root EXPORT]

Without `--root`, N studies are written with `studies.write_pacs_example` into a temporary folder (removed
at the end): each study is study/DICOM/EXAM0001/<series>/<files without extensions> with a localiser
(3 slices), a T2W (6), a b50/800/1400 DWI (12 files), its ADC map (4) and a secondary-capture screenshot,
all 64x64 pixels (pydicom's `MR_small.dcm`): 26 files a study, so the timings are dominated by the work
per file and per series, not by the voxels. With `--root`, an existing export (one study folder per study)
is used as it is.

Each command runs once, as a user runs it (a fresh process: its start-up, the import of mri_dino and its
libraries, is part of its time and is printed on its own line); dcm2niix converts each study folder
(`dcm2niix -b y -z n -o OUT STUDY`, sub-folders searched, as a user converts an export), with `--workers`
conversions at a time. The page cache is warm (the files were just written). `read_dcm2niix` (mri_dino's
dcm2niix engine, in this process) converting and reading back each series folder is timed too."""
import os, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastcore.script import call_parse

from mri_dino.dicom import dcm2niix_binary, read_dcm2niix
from mri_dino.io import VolumeError
from mri_dino.series import write_pacs_example


def timed(command:list) -> tuple:
    "Wall-clock seconds and exit code of one run of a command (its output kept for a failure)"
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode not in (0, 1): print(f"  {' '.join(command[:2])}… exited {run.returncode}: {(run.stdout + run.stderr).strip().splitlines()[-1:]}")
    return seconds, run.returncode


def convert_studies(studies:list, out:Path, workers:int) -> float:
    "Seconds to convert every study folder with the dcm2niix command alone, `workers` at a time"
    binary = dcm2niix_binary()
    def convert(study:Path):
        (out/study.name).mkdir(parents=True)
        run = subprocess.run([binary, '-b', 'y', '-z', 'n', '-o', str(out/study.name), str(study)], capture_output=True, text=True)
        return run.returncode
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool: codes = list(pool.map(convert, studies))
    seconds = time.perf_counter() - start
    if any(codes): print(f'  dcm2niix failed on {sum(c != 0 for c in codes)} studies')
    return seconds


def series_folders(study:Path) -> list:
    "The folders under a study that hold files (its series, as a PACS export lays them out)"
    return sorted({file.parent for file in study.rglob('*') if file.is_file()})


def engine_seconds(studies:list, work:Path) -> tuple:
    "Seconds for mri_dino's dcm2niix engine to convert and read back every series folder, and how many it refused"
    start, refused = time.perf_counter(), 0
    for study in studies:
        for number, folder in enumerate(series_folders(study)):
            try: read_dcm2niix(folder, work/f'{study.name}_{number}')
            except VolumeError: refused += 1
    return time.perf_counter() - start, refused


@call_parse
def main(n:int=20, # studies to write (without --root)
         workers:int=1, # processes of check and preprocess, and dcm2niix conversions at a time
         root:str=None, # an existing PACS-style export (one folder per study) instead of the written one
        ):
    "Print studies/s of check (headers only, full) and preprocess on a DICOM export against the dcm2niix command alone"
    scratch = Path(tempfile.mkdtemp(prefix='mri_dino_dicom_bench_'))
    try:
        if root is None:
            root = scratch/'export'
            for number in range(n): write_pacs_example(root, f'study_{number:04d}')
        root = Path(root)
        studies = sorted(p for p in root.iterdir() if p.is_dir())
        count = len(studies)
        print(f'{count} studies in {root} ({sum(len(series_folders(s)) for s in studies)} series folders, '
              f'{sum(1 for s in studies for f in s.rglob("*") if f.is_file())} files); {workers} worker(s); {os.cpu_count()} CPUs')
        startup, _ = timed(['mri_dino_check', '--help'])
        rows = [('mri_dino_check --headers-only', *timed(['mri_dino_check', str(root), '--headers-only', '--quiet', '--workers', str(workers)])),
                ('mri_dino_check', *timed(['mri_dino_check', str(root), '--quiet', '--workers', str(workers)])),
                ('mri_dino_preprocess', *timed(['mri_dino_preprocess', str(root), str(scratch/'cache'), '--quiet', '--workers', str(workers)]))]
        dcm2niix = convert_studies(studies, scratch/'dcm2niix', workers)
        engine, refused = engine_seconds(studies, scratch/'engine')
        print(f"\n{'':32s}{'seconds':>9s}{'studies/s':>11s}{'time / dcm2niix':>17s}")
        print(f"{'dcm2niix command alone':32s}{dcm2niix:9.2f}{count / dcm2niix:11.1f}{1.0:17.2f}")
        for name, seconds, code in rows: print(f"{name:32s}{seconds:9.2f}{count / seconds:11.1f}{seconds / dcm2niix:17.2f}   exit {code}")
        print(f"{'read_dcm2niix (in process)':32s}{engine:9.2f}{count / engine:11.1f}{engine / dcm2niix:17.2f}   {refused} series refused")
        print(f"\nstart-up of one mri_dino command (`mri_dino_check --help`): {startup:.2f} s, inside each command's time above")
    finally: shutil.rmtree(scratch, ignore_errors=True)
