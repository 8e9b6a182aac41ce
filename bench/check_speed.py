"""How long `check_dataset` takes on N synthetic prostate studies, headers only and with every voxel,
in one process and in several, side by side with a naive baseline (every volume read in full as
float32 with `read_volume`, one study after the other), and what that means for 17k studies.

    PYTHONPATH=. python bench/check_speed.py [--n 200] [--workers 2] [--t2w 256,256,24] [--dwi 96,96,20]

Each study is written in the prostate layout (ax_t2wi, ax_adc, ax_dwi_b1000, ax_dwi_b2000,
roi_Prostate as .nii.gz; int16 images with noise, a uint8 mask) into a temporary folder, which is
removed at the end. Timings are wall-clock seconds of one run each (the page cache is warm: the
files were just written, as on a second run over a local disk)."""
import os, shutil, sys, tempfile, time
from pathlib import Path

import nibabel as nib
import numpy as np
from fastcore.script import call_parse

from mri_dino.io import read_volume
from mri_dino.check import check_dataset
from mri_dino.studies import find_studies


def write_studies(root:Path, n:int, t2w_shape:tuple, dwi_shape:tuple, seed:int=0):
    "N prostate-layout studies of noisy int16 volumes (and a uint8 ROI) under `root`"
    rng = np.random.default_rng(seed)
    for number in range(n):
        folder = root/f'patient_{number:05d}'; folder.mkdir(parents=True)
        for name, shape, spacing in [('ax_t2wi', t2w_shape, (0.5, 0.5, 3.0)), ('ax_adc', dwi_shape, (2.0, 2.0, 3.6)),
                                     ('ax_dwi_b1000', dwi_shape, (2.0, 2.0, 3.6)), ('ax_dwi_b2000', dwi_shape, (2.0, 2.0, 3.6))]:
            voxels = rng.normal(500, 100, size=shape).clip(0, 4000).astype(np.int16)
            nib.save(nib.Nifti1Image(voxels, np.diag([*spacing, 1.0])), folder/f'{name}.nii.gz')
        mask = np.zeros(t2w_shape, np.uint8); mask[t2w_shape[0] // 3:2 * t2w_shape[0] // 3, t2w_shape[1] // 3:2 * t2w_shape[1] // 3] = 1
        nib.save(nib.Nifti1Image(mask, np.diag([0.5, 0.5, 3.0, 1.0])), folder/'roi_Prostate.nii.gz')


def naive_check(root:Path) -> int:
    "The baseline: every file of every study read in full (float32) and tested for NaN and constancy, serially"
    problems = 0
    table = find_studies(root)
    for study_id, row in table.iterrows():
        for column in ['t2w', 'adc', 'dwi', 'roi']:
            volume = read_volume(row[column], non_finite='zero')
            problems += int(volume.meta['non_finite_voxels'] > 0 or volume.data.min() == volume.data.max())
    return problems


def timed(function):
    start = time.perf_counter(); result = function(); return time.perf_counter() - start, result


@call_parse
def main(n:int=200, # number of studies
         workers:int=2, # processes for the parallel runs
         t2w:str='256,256,24', # T2W (and ROI) shape
         dwi:str='96,96,20', # ADC and DWI shape
         keep:bool=False, # keep the generated folder
        ):
    "Time check_dataset on N synthetic studies against a naive full-read baseline"
    t2w_shape, dwi_shape = tuple(map(int, t2w.split(','))), tuple(map(int, dwi.split(',')))
    root = Path(tempfile.mkdtemp(prefix='mri_dino_check_speed_'))
    try:
        seconds, _ = timed(lambda: write_studies(root, n, t2w_shape, dwi_shape))
        size = sum(f.stat().st_size for f in root.rglob('*.nii.gz'))
        print(f'{n} studies, T2W/ROI {t2w_shape}, ADC/DWI {dwi_shape}: {size / 1e6:.0f} MB of .nii.gz, written in {seconds:.1f} s; '
              f'{os.cpu_count()} CPUs seen')
        discovery, table = timed(lambda: find_studies(root))
        baseline, _ = timed(lambda: naive_check(root))
        runs = [('find_studies only (discovery)', discovery)]
        for voxels in (False, True):
            for count in sorted({1, workers}):
                seconds, report = timed(lambda: check_dataset(root, voxels=voxels, workers=count, progress=False))
                assert report.ok, str(report)
                runs.append((f'check_dataset voxels={voxels!s:5} workers={count}', seconds))
        print(f'\n{"run":45} {"seconds":>8} {"ms/study":>9} {"vs naive":>9} {"17k studies":>12}')
        print(f'{"naive: read_volume of every file, serial":45} {baseline:8.2f} {1000 * baseline / n:9.1f} {1.0:8.1f}x {baseline / n * 17000 / 60:9.1f} min')
        for name, seconds in runs:
            print(f'{name:45} {seconds:8.2f} {1000 * seconds / n:9.1f} {baseline / seconds:8.1f}x {seconds / n * 17000 / 60:9.1f} min')
        print('\n(17k = this run scaled linearly; speed-up vs naive > 1 means faster than the baseline)')
    finally:
        if keep: print(f'kept {root}')
        else: shutil.rmtree(root, ignore_errors=True)
