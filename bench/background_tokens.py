"""Forward + backward time of a 3D ViT on all patch tokens vs on the foreground tokens only (`forward_tokens`),
padded to the batch's largest count vs packed.

A batch of head-CT-like volumes whose foreground (a ball around the centre) covers a different share of each
volume, from 10% to 90% across the batch; prints the kept tokens per sample, the three times and the ratios.
Usage:
    PYTHONPATH=. python bench/background_tokens.py [--size 64] [--patch 8] [--batch 8] [--embed 384] [--depth 6] [--threads 2]
"""
import argparse, time
import torch
from mri_dino.vit import VisionTransformer, foreground_patches

parser = argparse.ArgumentParser()
parser.add_argument('--size', type=int, default=64); parser.add_argument('--patch', type=int, default=8)
parser.add_argument('--batch', type=int, default=8); parser.add_argument('--embed', type=int, default=384)
parser.add_argument('--depth', type=int, default=6); parser.add_argument('--repeats', type=int, default=3)
parser.add_argument('--low', type=float, default=0.1); parser.add_argument('--high', type=float, default=0.9)
parser.add_argument('--threads', type=int, default=2); parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
device = torch.device(args.device)
model = VisionTransformer(img_size=args.size, patch_size=args.patch, in_chans=1, embed_dim=args.embed, depth=args.depth,
                          num_heads=max(1, args.embed // 64), spatial_dims=3).to(device)
axis = torch.arange(args.size, dtype=torch.float32) - args.size / 2 + 0.5
z, y, x = torch.meshgrid(axis, axis, axis, indexing='ij')
distance = (z ** 2 + y ** 2 + (x * 1.2) ** 2).sqrt()                 # an ellipsoid's distance from the centre
fractions = torch.linspace(args.low, args.high, args.batch)           # the share of foreground voxels differs per sample
volumes = torch.stack([(distance <= distance.flatten().quantile(f)).float()[None] for f in fractions])
volumes = (volumes * (0.5 + 0.5 * torch.rand_like(volumes))).to(device)
keep = foreground_patches(volumes, args.patch)

def step(mode:str) -> float:
    model.zero_grad(set_to_none=True)
    if device.type == 'cuda': torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.forward_features(volumes) if mode == 'full' else model.forward_tokens(volumes, keep, packing=mode)
    (out['x_norm_clstoken'].square().mean() + out['x_norm_patchtokens'].square().mean()).backward()
    if device.type == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - start

modes = ('full', 'pad', 'pack')
for mode in modes: step(mode)                                         # warm-up
times = {mode: [] for mode in modes}
for repeat in range(args.repeats):                                   # rotate which goes first; keep the best of each
    for i in range(len(modes)):
        mode = modes[(i + repeat) % len(modes)]
        times[mode].append(step(mode))
best = {mode: min(t) for mode, t in times.items()}
counts, N = keep.sum(1), keep.shape[1]
print(f"device {device}, batch {args.batch} x {args.size}^3, patch {args.patch} ({N} tokens), ViT {args.embed}/{args.depth}, {args.threads} threads")
print(f"foreground voxels per sample {[round(float(f), 2) for f in fractions]}")
print(f"kept tokens per sample {counts.tolist()} ({counts.float().mean() / N:.0%} kept on average; "
      f"padded runs {int(counts.max()) * len(counts)} token rows, packed {int(counts.sum())}, full {N * len(counts)})")
print(f"all tokens {best['full'] * 1000:.0f} ms | padded {best['pad'] * 1000:.0f} ms | packed {best['pack'] * 1000:.0f} ms")
print(f"speed-up vs all tokens: padded {best['full'] / best['pad']:.2f}x, packed {best['full'] / best['pack']:.2f}x; "
      f"packed vs padded {best['pad'] / best['pack']:.2f}x")
