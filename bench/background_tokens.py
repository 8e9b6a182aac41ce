"""Forward + backward time of a 3D ViT on all patch tokens vs on the foreground tokens only (`forward_tokens`).

A batch of head-CT-like volumes whose foreground (an ellipsoid) covers a known share of the patches;
prints the kept fraction, both times and their ratio. Usage:
    PYTHONPATH=. python bench/background_tokens.py [--size 64] [--batch 4] [--embed 384] [--depth 6] [--threads 2]
"""
import argparse, time
import torch
from mri_dino.vit import VisionTransformer, foreground_patches

parser = argparse.ArgumentParser()
parser.add_argument('--size', type=int, default=64); parser.add_argument('--patch', type=int, default=8)
parser.add_argument('--batch', type=int, default=4); parser.add_argument('--embed', type=int, default=384)
parser.add_argument('--depth', type=int, default=6); parser.add_argument('--repeats', type=int, default=5)
parser.add_argument('--threads', type=int, default=2); parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
device = torch.device(args.device)
model = VisionTransformer(img_size=args.size, patch_size=args.patch, in_chans=1, embed_dim=args.embed, depth=args.depth,
                          num_heads=max(1, args.embed // 64), spatial_dims=3).to(device)
axis = (torch.arange(args.size, dtype=torch.float32) - args.size / 2 + 0.5) / (args.size / 2)
z, y, x = torch.meshgrid(axis, axis, axis, indexing='ij')
radii = torch.linspace(0.55, 0.8, args.batch)                       # foreground shares differ between samples
volumes = torch.stack([((z / r) ** 2 + (y / r) ** 2 + (x / (r * 0.8)) ** 2 <= 1).float()[None] for r in radii])
volumes = (volumes * (0.5 + 0.5 * torch.rand_like(volumes))).to(device)
keep = foreground_patches(volumes, args.patch)

def step(tokens_only:bool) -> float:
    model.zero_grad(set_to_none=True)
    if device.type == 'cuda': torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.forward_tokens(volumes, keep) if tokens_only else model.forward_features(volumes)
    (out['x_norm_clstoken'].square().mean() + out['x_norm_patchtokens'].square().mean()).backward()
    if device.type == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - start

step(False), step(True)                                              # warm-up
times = {False: [], True: []}
for repeat in range(args.repeats):                                   # alternate which goes first; keep the best of each
    for tokens_only in ((False, True) if repeat % 2 == 0 else (True, False)): times[tokens_only].append(step(tokens_only))
full, kept = min(times[False]), min(times[True])
counts = keep.sum(1)
print(f"device {device}, batch {args.batch} x {args.size}^3, patch {args.patch} ({keep.shape[1]} tokens), ViT {args.embed}/{args.depth}")
print(f"kept tokens per sample {counts.tolist()} (largest {int(counts.max())}, {counts.float().mean() / keep.shape[1]:.0%} kept on average)")
print(f"all tokens {full * 1000:.0f} ms | foreground tokens {kept * 1000:.0f} ms | ratio {full / kept:.2f}x")
