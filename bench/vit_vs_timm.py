"""Forward + backward time of mri_dino's ViT against timm's VisionTransformer of the same configuration.

Both models are built with the same size, patch 14, LayerScale 1e-5, no registers, 3 input
channels (`stack` fusion), and run on the same input batch; timm's weights are copied into ours
first (the parameter names are the same), so the script also checks that both compute the same
function (`max |diff|` of the normalised tokens). The steps of the two models are interleaved,
alternating which goes first, so a machine shared with other work slows both alike; the best
(least disturbed) step time is reported with the ratio ours / timm (below 1: ours faster), in
wall-clock and in process CPU time. On a busy shared CPU, take the ratios with a grain of salt
and raise --iters.

    PYTHONPATH=. python bench/vit_vs_timm.py                       # CPU: ViT-S/14 and ViT-B/14, batch 4 at 224 (2-4 min on 2 busy cores)
    PYTHONPATH=. python bench/vit_vs_timm.py --batch 64 --iters 20 # CUDA: bf16 autocast, with images per second

Not a test: timm is a benchmark-only dependency (`pip install mri_dino[bench]`).
"""
import argparse
import time

import torch

from mri_dino.vit import VIT_SIZES, VisionTransformer


def build_pair(size:str, img_size:int, device:torch.device):
    "(ours, timm's) ViT of the given size with the same weights."
    from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer
    shape = VIT_SIZES[size]
    ours = VisionTransformer(img_size=img_size, patch_size=14, layerscale_init=1e-5, **shape)
    timm_model = TimmVisionTransformer(img_size=img_size, patch_size=14, num_classes=0, init_values=1e-5, qkv_bias=True,
                                       embed_dim=shape['embed_dim'], depth=shape['depth'], num_heads=shape['num_heads'])
    result = ours.load_state_dict(timm_model.state_dict(), strict=False)
    if result.unexpected_keys or set(result.missing_keys) != {'mask_token', 'missing_modality_embed'}:   # ours only
        raise RuntimeError(f"timm and mri_dino {size} differ: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    return ours.to(device).train(), timm_model.to(device).train()


def ours_step(model, x):
    out = model.forward_features(x)
    return torch.cat([out['x_norm_clstoken'][:, None], out['x_norm_patchtokens']], 1)

def timm_step(model, x):
    return model.forward_features(x)


def timed(step, model, x, device, autocast):
    "(wall seconds, process CPU seconds) of one forward + backward pass."
    model.zero_grad(set_to_none=True)
    if device.type == 'cuda': torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        tokens = step(model, x)
    tokens.float().pow(2).mean().backward()
    if device.type == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - start_cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='vit_small,vit_base', help='comma-separated: vit_tiny, vit_small, vit_base, vit_large')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--iters', type=int, default=2, help='timed steps per model')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps per model first')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=0, help='CPU threads (0: torch default)')
    args = parser.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    autocast = device.type == 'cuda'                 # bf16 on a GPU, float32 on the CPU
    torch.manual_seed(0)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{'bf16 autocast' if autocast else 'float32'}, batch {args.batch} x 3 x {args.img_size}^2, patch 14, "
          f"{args.warmup} warm-up + {args.iters} timed forward+backward steps each, interleaved; torch {torch.__version__}")
    print("s/step: best (least disturbed) wall-clock seconds per step; cpu: best process CPU seconds per step (less sensitive to other load on a shared CPU)")
    print(f"{'model':<10} {'params':>8} {'max |diff|':>11} {'ours s/step':>12} {'timm s/step':>12} {'ours img/s':>11} {'timm img/s':>11} "
          f"{'ours/timm':>10} {'ours cpu':>9} {'timm cpu':>9} {'cpu ratio':>10}")
    for size in args.sizes.split(','):
        ours, timm_model = build_pair(size, args.img_size, device)
        x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            difference = (ours_step(ours.eval(), x).float() - timm_step(timm_model.eval(), x).float()).abs().max().item()
        ours.train(); timm_model.train()
        times = {'ours': [], 'timm': []}
        for i in range(args.warmup + args.iters):
            pair = [('ours', ours_step, ours), ('timm', timm_step, timm_model)]
            for name, step, model in (pair if i % 2 == 0 else pair[::-1]):      # alternate who goes first
                seconds = timed(step, model, x, device, autocast)
                if i >= args.warmup: times[name].append(seconds)
        ours_time, timm_time = (min(t for t, _ in times[name]) for name in ('ours', 'timm'))
        ours_cpu, timm_cpu = (min(c for _, c in times[name]) for name in ('ours', 'timm'))
        params = sum(p.numel() for p in timm_model.parameters()) / 1e6
        print(f"{size:<10} {params:>7.1f}M {difference:>11.1e} {ours_time:>12.3f} {timm_time:>12.3f} "
              f"{args.batch / ours_time:>11.1f} {args.batch / timm_time:>11.1f} {ours_time / timm_time:>10.3f} "
              f"{ours_cpu:>9.3f} {timm_cpu:>9.3f} {ours_cpu / timm_cpu:>10.3f}", flush=True)
        del ours, timm_model


if __name__ == '__main__':
    main()
