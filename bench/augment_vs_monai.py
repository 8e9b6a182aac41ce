"""Multi-view augmentation throughput of one data-loading worker: mri_dino's `MultiViewCrops` against the
same recipe written with MONAI transforms, and how many workers one ViT-S/14 training step at batch 64 needs,
before and after moving the whole recipe onto the training device (`crops.on_device`, `mri_dino.device_views`).

The recipe is the default: 2 global crops of 224² and 8 local crops of 98² of a 3-modality 256² slice, flips,
rotations up to 10°, bias field, gamma, brightness/contrast, Gaussian blur (DINOv2's 1.0 / 0.1 / 0.5), Gaussian
noise, clipping and normalisation, intensity transforms drawn per modality, modality dropout. Each sample is a random
axial slice (3, 256, 256) of a cache of phantom studies (`mri_dino.phantom` -> `mri_dino.preprocess` ->
`mri_dino.datasets.SliceDataset`, memory-mapped uint8), made before the timing starts (about 20 s).

With `crops.on_device` a worker only reads samples and collates them (`DeviceCollate`: stacking, the iBOT masks,
a seed); `DeviceViews` makes the views on the training device. Its CPU rate (one thread) is printed for reference,
its GPU time is not measured here (no GPU was lent when this row was added).

One worker is one process with one thread (`torch.set_num_threads(1)`, as in a DataLoader worker). Rates are in
CPU time of this process, so other programs on the machine do not distort them; wall-clock rates are printed too.

    python bench/augment_vs_monai.py                 # about a minute
    python bench/augment_vs_monai.py --seconds 10 --step-batch 8
"""
import argparse
import copy
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mri_dino.augment import MultiViewCrops
from mri_dino.device_views import DeviceCollate, DeviceViews
from mri_dino.datasets import SliceDataset
from mri_dino.masking import collate_views
from mri_dino.phantom import make_phantom_dataset
from mri_dino.preprocess import preprocess_dataset

# ---------------------------------------------------------------- the cache
def phantom_slices(folder:Path, studies:int=2) -> SliceDataset:
    "Axial slices of 256² from a cache of phantom studies (adult-sized fields of view at 0.5 mm), as training reads them"
    make_phantom_dataset(folder / 'raw', n=studies, scale=256 / 280)     # the T2W grid is 280 voxels a side at scale 1
    report = preprocess_dataset(folder / 'raw', folder / 'cache', workers=2, progress=False)
    if not report.ok: raise SystemExit(f"preprocessing the phantom studies failed: {report}")
    return SliceDataset(folder / 'cache', axis='axial')

class RandomSlices:
    "Samples of random slices of a dataset"
    def __init__(self, dataset, seed=0): self.dataset, self.rng = dataset, np.random.default_rng(seed)
    def __call__(self) -> dict: return self.dataset[int(self.rng.integers(len(self.dataset)))]

# ---------------------------------------------------------------- the same recipe in MONAI
def monai_recipe(global_size=224, local_size=98, local_number=8):
    "The default recipe with MONAI transforms; returns a function Sample -> (global views, local views, modality masks)"
    from monai.transforms import (Compose, OneOf, Identity, RandScaleCrop, Resize, RandFlip, RandRotate, RandBiasField,
                                  RandAdjustContrast, RandScaleIntensityFixedMean, RandScaleIntensity, RandGaussianSmooth,
                                  RandGaussianNoise, ScaleIntensityRange)
    def spatial(size, scale):
        # RandScaleCrop draws each side's fraction independently: sides in [sqrt(min), sqrt(max)] give areas in the range
        return Compose([RandScaleCrop(roi_scale=math.sqrt(scale[0]), max_roi_scale=math.sqrt(scale[1]), random_size=True),
                        Resize((size, size), mode='bilinear'),
                        RandFlip(prob=0.5, spatial_axis=1),
                        RandRotate(range_x=math.radians(10), prob=0.5, keep_size=True, mode='bilinear', padding_mode='zeros')])
        # (MONAI's lazy resampling would fuse these four into one resampling, but in MONAI 1.6.1 it fails on 2D images
        # as soon as a random transform does not fire: "mat1 and mat2 shapes cannot be multiplied (3x3 and 4x4)")
    def intensity(blur_prob):
        return Compose([RandBiasField(degree=3, coeff_range=(-0.15, 0.15), prob=0.3),
                        RandAdjustContrast(gamma=(0.75, 1.5), prob=0.3),
                        OneOf([Compose([RandScaleIntensityFixedMean(factors=0.4, prob=1.0), RandScaleIntensity(factors=0.4, prob=1.0)]),
                               Identity()], weights=[0.8, 0.2]),
                        RandGaussianSmooth(sigma_x=(0.1, 1.0), sigma_y=(0.1, 1.0), prob=blur_prob),
                        RandGaussianNoise(prob=0.2, mean=0.0, std=0.05),
                        ScaleIntensityRange(a_min=0.0, a_max=1.0, b_min=-2.0, b_max=2.0, clip=True)])   # clip, (x - 0.5) / 0.25
    global_spatial, local_spatial = spatial(global_size, (0.5, 1.0)), spatial(local_size, (0.2, 0.5))
    global_intensity = [intensity(1.0), intensity(0.1)]
    local_intensity = intensity(0.5)

    def drop_modalities(present, p=0.1):
        keep = present & (torch.rand(present.shape) >= p)
        if not keep.any(): keep[torch.multinomial(present.float(), 1)] = True
        return keep

    def view(image, present, spatial_transform, intensity_transform):
        moved = torch.as_tensor(spatial_transform(image))
        channels = [torch.as_tensor(intensity_transform(moved[c:c + 1])) for c in range(len(moved))]   # per modality
        keep = drop_modalities(present)
        return torch.cat(channels) * keep[:, None, None], keep

    def augment(sample):
        image, present = sample['image'], sample['modality_mask']
        global_views = [view(image, present, global_spatial, global_intensity[min(i, 1)]) for i in range(2)]
        local_views = [view(image, present, local_spatial, local_intensity) for _ in range(local_number)]
        return dict(global_crops=[v for v, _ in global_views], local_crops=[v for v, _ in local_views],
                    global_modality_mask=[m for _, m in global_views], local_modality_mask=[m for _, m in local_views],
                    study_id=sample['study_id'])
    return augment

# ---------------------------------------------------------------- timing
def rate(run, seconds:float) -> tuple[float, float]:
    "Calls of `run` per second of this process's CPU time, and per second of wall-clock time"
    run()
    count, cpu, wall = 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu < seconds: run(); count += 1
    return count / (time.process_time() - cpu), count / (time.perf_counter() - wall)

def vit_small_step(batch:int, steps:int=1):
    "Seconds and FLOPs of one DINOv2-style training step of ViT-S/14 (mri_dino.vit) at `batch`: teacher on the global crops, student on all crops with iBOT masks, DINO and iBOT heads of 65536 prototypes, AdamW, EMA"
    from torch.utils.flop_counter import FlopCounterMode
    from mri_dino.vit import vit_small
    from mri_dino.losses import DINOHead
    torch.manual_seed(0)
    student = torch.nn.ModuleDict(dict(backbone=vit_small(img_size=224, patch_size=14, in_chans=3),
                                       dino_head=DINOHead(384), ibot_head=DINOHead(384)))
    teacher = copy.deepcopy(student).requires_grad_(False)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    recipe = MultiViewCrops()
    sample = dict(image=torch.rand(3, 256, 256), modality_mask=torch.ones(3, dtype=torch.bool), roi_box=None, study_id='s')
    data = collate_views([recipe(sample) for _ in range(batch)], patch_size=14)
    globals_, locals_, masks = data['global_crops'], data['local_crops'], data['masks']
    present_global, present_local = data['global_modality_mask'], data['local_modality_mask']
    def step():
        with torch.no_grad():
            out = teacher['backbone'].forward_features(globals_, present_global)
            teacher_cls = teacher['dino_head'](out['x_norm_clstoken']).softmax(-1)
            teacher_patches = teacher['ibot_head'](out['x_norm_patchtokens'][masks]).softmax(-1)
        global_out = student['backbone'].forward_features(globals_, present_global, masks)
        local_out = student['backbone'].forward_features(locals_, present_local)        # 98² -> 7 x 7 patches
        cls = torch.cat([global_out['x_norm_clstoken'], local_out['x_norm_clstoken']])
        logits = student['dino_head'](cls).log_softmax(-1)
        patches = student['ibot_head'](global_out['x_norm_patchtokens'][masks]).log_softmax(-1)
        target = teacher_cls.view(2, batch, -1).mean(0)                                # (B, K): stands in for DINO's pairing
        loss = -(logits.view(-1, batch, logits.shape[-1]) * target).sum(-1).mean() - (patches * teacher_patches).sum(-1).mean()
        optimizer.zero_grad(set_to_none=True); loss.backward(); optimizer.step()
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()): t.lerp_(s, 0.004)
    step()                                                                            # warm-up
    with FlopCounterMode(display=False) as counter: step()
    start = time.perf_counter()
    for _ in range(steps): step()
    return (time.perf_counter() - start) / steps, counter.get_total_flops()

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=5.0, help='CPU seconds each pipeline runs')
    parser.add_argument("--step-batch", type=int, default=2, help='batch of the measured ViT-S/14 step (scaled to 64)')
    parser.add_argument('--no-step', action='store_true', help='skip the ViT-S/14 step')
    parser.add_argument('--no-monai', action='store_true', help='skip the MONAI rows (also when MONAI is not installed)')
    args = parser.parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: from monai.data import set_track_meta
    except ImportError: args.no_monai = True; print("MONAI is not installed: no MONAI rows")
    with tempfile.TemporaryDirectory() as folder:
        load = RandomSlices(phantom_slices(Path(folder)))
        ours, deferred = MultiViewCrops(), MultiViewCrops(batch_intensity=True)
        monai = None if args.no_monai else monai_recipe()
        check = [ours(load())] + ([] if args.no_monai else [monai(load())])
        for out in check:
            assert [tuple(v.shape) for v in out['global_crops']] == [(3, 224, 224)] * 2
            assert [tuple(v.shape) for v in out['local_crops']] == [(3, 98, 98)] * 8
        results = {}
        results['read from the cache only (SliceDataset)'] = rate(load, args.seconds)
        results['mri_dino MultiViewCrops'] = rate(lambda: ours(load()), args.seconds)
        results['mri_dino, spatial part (batch_intensity)'] = rate(lambda: deferred(load()), args.seconds)
        collate, batch = DeviceCollate.from_recipe(ours, patch_size=14), 16
        device_views = DeviceViews(ours)
        results['on_device worker: read + DeviceCollate'] = tuple(batch * r for r in rate(lambda: collate([load() for _ in range(batch)]), args.seconds))
        results['DeviceViews on this CPU (1 thread)'] = tuple(batch * r for r in rate(lambda: device_views(collate([load() for _ in range(batch)])), args.seconds))
        if not args.no_monai:
            results['MONAI (MetaTensor, its default)'] = rate(lambda: monai(load()), args.seconds)
            set_track_meta(False)
            results['MONAI (set_track_meta(False))'] = rate(lambda: monai(load()), args.seconds)
            set_track_meta(True)
    print(f"one worker (1 thread), default recipe 2x224² + 8x98², 3 modalities, 256² phantom slices from the cache (SliceDataset)")
    print(f"{'pipeline':44s} {'samples/s (CPU)':>16s} {'samples/s (wall)':>17s}")
    for name, (cpu, wall) in results.items(): print(f"{name:44s} {cpu:16.1f} {wall:17.1f}")
    ours_rate = results['mri_dino MultiViewCrops'][0]
    if not args.no_monai:
        best_monai = max(results['MONAI (MetaTensor, its default)'][0], results['MONAI (set_track_meta(False))'][0])
        print(f"ratio mri_dino / best MONAI: {ours_rate / best_monai:.1f}x")
    device_rate = results['on_device worker: read + DeviceCollate'][0]
    print(f"per worker, before (MultiViewCrops in the worker) and after (crops.on_device): {ours_rate:.0f} and {device_rate:.0f} "
          f"samples/s, {device_rate / ours_rate:.0f}x")
    if args.no_step: return
    torch.set_num_threads(threads)
    seconds, flops = vit_small_step(args.step_batch)
    per_sample = flops / args.step_batch
    step_64 = seconds * 64 / args.step_batch
    print(f"\nViT-S/14 DINOv2-style step (mri_dino.vit, DINO + iBOT heads of 65536 prototypes, AdamW, EMA):")
    print(f"  {per_sample / 1e9:.0f} GFLOP per sample, {64 * per_sample / 1e12:.1f} TFLOP per step at batch 64")
    print(f"  CPU ({threads} threads): {seconds:.1f} s per step at batch {args.step_batch}, about {step_64:.0f} s at batch 64;"
          f" one worker makes the step's 64 samples in {64 / ours_rate:.2f} s")
    spatial_rate = results['mri_dino, spatial part (batch_intensity)'][0]
    print("  GPU, estimated from the FLOPs at a sustained rate (ViT-S is small: expect 25-40% of the bf16 peak):")
    for name, tflops in [('A100, 100 TFLOP/s sustained', 100), ('H100, 250 TFLOP/s sustained', 250)]:
        step = 64 * per_sample / (tflops * 1e12)
        need = 64 / step
        print(f"    {name}: {step * 1e3:.0f} ms per step, {need:.0f} samples/s -> {need / ours_rate:.0f} workers "
              f"({need / spatial_rate:.0f} with the intensity part on the GPU, {need / device_rate:.1f} with crops.on_device)")

if __name__ == '__main__': main()
