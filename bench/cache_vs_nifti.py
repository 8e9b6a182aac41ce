"""Slices per second read from the preprocessing cache, against reading and normalising the .nii.gz files for every
sample (mri_dino.io + percentiles, and the same with MONAI's LoadImage + ScaleIntensityRangePercentiles), on the same
slices, in one run; and the bytes on disk per study, cache against source.

The data are phantom studies (`mri_dino.phantom`) at adult size by default (`--scale 1`: T2W 280 x 280 x 28 voxels of
0.5 x 0.5 x 3 mm, ADC and DWI 100 x 100 x 24 of 2 x 2 x 3.6 mm, int16 .nii.gz), preprocessed onto the T2W grid (uint8).
A sample is one axial 3-channel slice (T2W, ADC, DWI b=1000) with its intensities in [0, 1]:

- cache: `SliceDataset(cache, axis='axial', isotropic=False)[i]`, memory-mapped;
- per-sample NIfTI: for each modality `read_volume` (mri_dino.io), the 0.5/99.5 percentiles, normalise, the axial
  slice through the same world point in the cache's voxel order, ADC and DWI slices resized to the T2W slice
  (bilinear); no resampling through the affines, so this baseline does less than the cache did once and its rate is
  an upper bound (its T2W channel is the cache's, checked below);
- MONAI: the same with `LoadImage(image_only=True)` + `ScaleIntensityRangePercentiles(0.5, 99.5, 0, 1, clip=True)`.

One process, one thread (`torch.set_num_threads(1)`, as in a DataLoader worker); the page cache is warm (every file
read once before timing). Rates are per wall-clock second and per CPU second of this process.

    PYTHONPATH=. python bench/cache_vs_nifti.py                  # about 3 minutes on 2 CPU cores (2 writing the phantoms)
    PYTHONPATH=. python bench/cache_vs_nifti.py --n 6 --samples 60 --scale 0.4
"""
import os, shutil, tempfile, time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from fastcore.script import call_parse

from mri_dino.datasets import SliceDataset
from mri_dino.io import read_volume
from mri_dino.phantom import make_phantom_dataset
from mri_dino.preprocess import preprocess_dataset
from mri_dino.cache import read_index, load_cached_study
from mri_dino.resample import to_canonical

FILES = {'t2w': 'ax_t2wi.nii.gz', 'adc': 'ax_adc.nii.gz', 'dwi': 'ax_dwi_b1000.nii.gz'}


def slice_through(data, affine, world, shape):
    "The axial slice of `data` through world point `world`, in the cache's voxel order (a flip/transpose), resized to `shape`"
    canonical, canonical_affine = to_canonical(data, affine)         # views of the array, no copy
    d = int(np.rint(np.linalg.solve(canonical_affine[:3, :3], world - canonical_affine[:3, 3]))[0])
    plane = canonical[int(np.clip(d, 0, canonical.shape[0] - 1))]
    tensor = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))
    if tuple(tensor.shape) != tuple(shape):
        tensor = F.interpolate(tensor[None, None], size=tuple(shape), mode='bilinear', align_corners=False)[0, 0]
    return tensor


def nifti_sample(folder, world, shape):
    "Per-sample baseline with mri_dino.io: read, percentile-normalise, slice each modality"
    channels = []
    for name in FILES.values():
        volume = read_volume(folder / name)
        low, high = np.percentile(volume.data, [0.5, 99.5])
        normalised = np.clip((volume.data - low) / max(high - low, 1e-6), 0, 1)
        channels.append(slice_through(normalised, volume.affine, world, shape))
    return torch.stack(channels)


def monai_pipeline():
    from monai.transforms import LoadImage, ScaleIntensityRangePercentiles
    load = LoadImage(image_only=True)
    scale = ScaleIntensityRangePercentiles(lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True)
    def sample(folder, world, shape):
        channels = []
        for name in FILES.values():
            image = load(str(folder / name))                        # MetaTensor with its affine (RAS)
            normalised = scale(image)
            affine = np.asarray(image.affine, dtype=np.float64)
            channels.append(slice_through(np.asarray(normalised), affine, world, shape))
        return torch.stack(channels)
    return sample


def timed(function, items, repeat=1):
    "Wall and CPU seconds per item of `function(item)` over `items` (repeated)"
    for item in items[:2]: function(item)                           # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        for item in items: function(item)
    count = repeat * len(items)
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


@call_parse
def main(n:int=12, # phantom studies
         scale:float=1.0, # anatomy and field-of-view size (1 = adult)
         samples:int=120, # slices timed for the NIfTI paths (the cache reads the same slices, many times over)
         workdir:str=None, # where to write the data (default: a temporary folder, removed at the end)
         seed:int=0):
    "Cache vs per-sample NIfTI vs MONAI: slices/s on the same slices; bytes on disk per study"
    torch.set_num_threads(1)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix='cache_vs_nifti_'))
    try:
        start = time.perf_counter()
        make_phantom_dataset(root / 'raw', n=n, seed=seed, scale=scale, dwi_bvalues=(1000,))
        print(f'{n} phantom studies (scale {scale}) written in {time.perf_counter() - start:.1f} s')
        report = preprocess_dataset(root / 'raw', root / 'cache', workers=min(4, os.cpu_count() or 1), progress=False)
        print(f'preprocessed: {report}')
        index = read_index(root / 'cache')
        dataset = SliceDataset(root / 'cache', axis='axial', isotropic=False)
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(dataset), size=min(samples, len(dataset)), replace=False)
        items = []
        for item in picks:                                           # the same slices for every path
            study, _, d = dataset.position(int(item))
            study_id = dataset.study_ids[study]
            cached = load_cached_study(root / 'cache', study_id)
            height, width = cached.image.shape[2:]
            world = cached.affine @ np.array([d, (height - 1) / 2, (width - 1) / 2, 1.0])
            items.append((int(item), root / 'raw' / study_id, world[:3], (height, width)))
        # the NIfTI baseline's slice through the same world point is the cache's slice (T2W: same voxels)
        check = nifti_sample(items[0][1], items[0][2], items[0][3])
        test = dataset[items[0][0]]['image']
        print(f'same slice check: mean |cache - NIfTI| of the T2W channel = {float((check[0] - test[0]).abs().mean()):.4f} '
              f'(uint8 quantisation: <= {0.5 / 255:.4f})')
        cache_time = timed(lambda it: dataset[it[0]], items, repeat=max(1, 2000 // len(items)))
        nifti_time = timed(lambda it: nifti_sample(it[1], it[2], it[3]), items)
        monai = monai_pipeline()
        monai_time = timed(lambda it: monai(it[1], it[2], it[3]), items)
        print(f'\nslices/s, one process, one thread, {len(items)} slices (3 x {items[0][3][0]} x {items[0][3][1]}):')
        print(f'{"path":28s} {"wall":>10s} {"CPU":>10s}   cache is ... x faster (wall, CPU)')
        for name, (wall, cpu) in [('cache (SliceDataset)', cache_time), ('per-sample NIfTI (io)', nifti_time),
                                  ('MONAI LoadImage+Percentiles', monai_time)]:
            ratio = f'{wall / cache_time[0]:8.0f} x {cpu / cache_time[1]:8.0f} x' if name[:5] != 'cache' else ''
            print(f'{name:28s} {1 / wall:10.1f} {1 / cpu:10.1f}   {ratio}')
        source_used = [sum((root / 'raw' / s / f).stat().st_size for f in [*FILES.values(), 'roi_Prostate.nii.gz']) for s in index.index]
        cached = [sum((root / 'cache' / 'studies' / f'{s}{suffix}').stat().st_size for suffix in ('.npy', '.roi.npy', '.json'))
                  for s in index.index]
        images_only = [(root / 'cache' / index.loc[s, 'file']).stat().st_size for s in index.index]
        print(f'\nbytes on disk per study (mean of {len(index)}):')
        print(f'  source .nii.gz (T2W, ADC, DWI b1000, ROI):  {np.mean(source_used) / 1e6:8.2f} MB')
        print(f'  cache (uint8 image + ROI + JSON):           {np.mean(cached) / 1e6:8.2f} MB  ({np.mean(cached) / np.mean(source_used):.2f} x the source)')
        print(f'  cache image only (3 x {"x".join(str(v) for v in index.iloc[0][["depth", "height", "width"]])} uint8): '
              f'{np.mean(images_only) / 1e6:8.2f} MB (float32 would be 4 x: {4 * np.mean(images_only) / 1e6:.2f} MB)')
    finally:
        if not workdir: shutil.rmtree(root, ignore_errors=True)
