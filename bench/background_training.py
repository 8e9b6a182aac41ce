"""Training steps/s of the DINO/iBOT model with and without background-token filtering (`train.remove_background`).

Phantom prostate studies imaged with a wide field of view (480 mm at scale 0.4, 1 mm pixels: the body fills about a
quarter of each 192 x 192 slice, air around it), the default config's model and crops, ROI-free crops
(`data.restrict=null`, `crops.crop_from_tumor_foreground=0`: slices and crops from anywhere). The phantom's DWI is
noisy in air, so a patch is kept when half its voxels exceed 0.15 (`train.foreground_threshold=0.15`,
`train.min_foreground=0.5`; override them on the command line). A pool of batches is collated first (data loading is
not timed); then the same plain training step (SSLModel forward, backward, AdamW, teacher EMA) runs on the pool with
`remove_background` false and true, alternating, and the script prints steps/s, the share of tokens each backbone run
kept, and the ratio. Usage:
    PYTHONPATH=. python bench/background_training.py [--batches 6] [--repeats 3] [--threads 2] [key=value overrides ...]
"""
import argparse, shutil, tempfile, time, warnings
from pathlib import Path
import torch
from mri_dino.phantom import make_phantom_dataset
from mri_dino.config import load_config
from mri_dino.train import prepare_cache, build_datasets, _collate, build_model

parser = argparse.ArgumentParser()
parser.add_argument('--batches', type=int, default=6); parser.add_argument('--repeats', type=int, default=3)
parser.add_argument('--threads', type=int, default=2); parser.add_argument('overrides', nargs='*')
args = parser.parse_args()
warnings.filterwarnings('ignore')
torch.set_num_threads(args.threads)
folder = Path(tempfile.mkdtemp())
wide = dict(t2w=dict(spacing=(1.0, 1.0, 3.0), fov=(480.0, 480.0, 84.0)), dwi=dict(fov=(480.0, 480.0, 86.4)))
make_phantom_dataset(folder / 'studies', n=4, scale=0.4, seed=0, split_csvs=True, grids=wide)
overrides = [f'data.root={folder / "studies"}', f'data.cache_root={folder / "cache"}', 'data.restrict=null',
             'crops.crop_from_tumor_foreground=0', 'train.foreground_threshold=0.15', 'train.min_foreground=0.5', *args.overrides]
cfg = load_config(None, overrides)
train_set, _ = build_datasets(cfg, prepare_cache(cfg))
collate, generator = _collate(cfg), torch.Generator().manual_seed(0)
size = cfg.train.batch_size_per_gpu
batches = [collate([train_set[int(i)] for i in torch.randint(len(train_set), (size,), generator=generator)]) for _ in range(args.batches)]

def make_model(remove_background):
    torch.manual_seed(0)
    model = build_model(load_config(None, overrides + [f'train.remove_background={str(remove_background).lower()}'])).train()
    return model, torch.optim.AdamW(model.student.parameters(), lr=1e-4)

def run(model, optimiser):
    start = time.perf_counter()
    for batch in batches:
        terms = model(batch, teacher_temp=0.04)
        optimiser.zero_grad(); sum(terms.values()).backward(); optimiser.step(); model.update_teacher(0.996)
    return (time.perf_counter() - start) / len(batches)

models = {remove: make_model(remove) for remove in (False, True)}
for remove in models: run(*models[remove])                                # warm-up
times = {False: [], True: []}
for repeat in range(args.repeats):
    for remove in ((False, True) if repeat % 2 == 0 else (True, False)): times[remove].append(run(*models[remove]))
kept = [models[True][0].keep_masks(batch) for batch in batches]
global_share = sum(int(g.sum()) for g, _ in kept) / sum(g.numel() for g, _ in kept)
local_share = sum(int(l.sum()) for _, l in kept) / sum(l.numel() for _, l in kept)
full, filtered = min(times[False]), min(times[True])
student = cfg.student
print(f"{student.arch} depth {student.depth} patch {student.patch_size}, batch {size} (2 x {cfg.crops.global_crops_size} px + "
      f"{cfg.crops.local_crops_number} x {cfg.crops.local_crops_size} px), wide-FOV phantom slices, ROI-free crops, {args.threads} threads")
print(f"patches kept: global crops {global_share:.0%}, local crops {local_share:.0%}")
print(f"all tokens {1 / full:.2f} steps/s | remove_background {1 / filtered:.2f} steps/s | ratio {full / filtered:.2f}x")
shutil.rmtree(folder, ignore_errors=True)
