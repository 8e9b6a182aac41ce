"""Global and local crops through the student in one packed call (`student.packed_crops: true`,
`VisionTransformer.forward_features_list`) against two separate `forward_features` calls (the default).

DINOv2's recipe: per sample 2 global crops of 224² and 8 local crops of 98², 3 modalities, patch 14, iBOT masks
on the global crops. Forward and backward of the backbone in one thread; a step's time is the CPU time of this
process (other programs on a shared machine distort it less than wall-clock time), the median of `--repeats`, the
two paths taking turns. The outputs of both paths are checked equal first (1e-4 in float32).

    python bench/packed_crops.py                     # ViT-S/14 and ViT-Ti/14 at batch 2, a few minutes
    python bench/packed_crops.py --arch vit_small --batch 8 --repeats 5
"""
import argparse
import statistics
import time

import torch

from mri_dino.vit import VIT_SIZES, VisionTransformer


def crops(batch:int, global_size:int=224, local_size:int=98, n_global:int=2, n_local:int=8, patch:int=14, seed:int=0):
    "View-major global and local crops, their modality masks and iBOT masks on the global crops"
    generator = torch.Generator().manual_seed(seed)
    global_crops = torch.randn(n_global * batch, 3, global_size, global_size, generator=generator)
    local_crops = torch.randn(n_local * batch, 3, local_size, local_size, generator=generator)
    masks = torch.rand(n_global * batch, (global_size // patch) ** 2, generator=generator) < 0.3
    present = torch.ones(n_global * batch, 3, dtype=torch.bool), torch.ones(n_local * batch, 3, dtype=torch.bool)
    return global_crops, local_crops, present, masks


def step(model, data, packed:bool):
    "Forward and backward of the student's backbone on all crops; the CLS tokens"
    global_crops, local_crops, (present_global, present_local), masks = data
    if packed:
        outs = model.forward_features_list([global_crops, local_crops], [present_global, present_local], [masks, None])
    else:
        outs = [model.forward_features(global_crops, present_global, masks), model.forward_features(local_crops, present_local)]
    loss = sum(o['x_norm_clstoken'].square().mean() + o['x_norm_patchtokens'].square().mean() for o in outs)
    loss.backward()
    return [o['x_norm_clstoken'].detach() for o in outs]


def timed(model, data, repeats) -> dict:
    "Median CPU seconds of a step, separate and packed, taking turns"
    times = {False: [], True: []}
    for packed in (False, True): step(model, data, packed)                          # warm-up
    for _ in range(repeats):
        for packed in (False, True):
            model.zero_grad(set_to_none=True)
            start = time.process_time(); step(model, data, packed); times[packed].append(time.process_time() - start)
    return {packed: statistics.median(t) for packed, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', nargs='*', default=['vit_small', 'vit_tiny'], choices=list(VIT_SIZES))
    parser.add_argument('--batch', type=int, nargs='*', default=[2, 2], help='samples per step, one per arch')
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, CPU time; forward + backward of the backbone, "
          f"2 x 224² + 8 x 98² crops per sample, 3 modalities, patch 14")
    print(f"{'arch':10s} {'batch':>5s} {'separate (s)':>13s} {'packed (s)':>11s} {'packed / separate':>18s}")   # CPU seconds
    for arch, batch in zip(args.arch, args.batch):
        torch.manual_seed(0)
        model = VisionTransformer(**VIT_SIZES[arch], img_size=224, patch_size=14, in_chans=3, drop_path_rate=0.0).train()
        data = crops(batch)
        model.eval()
        with torch.no_grad():
            a = [model.forward_features(data[0], data[2][0], data[3])['x_norm_clstoken'], model.forward_features(data[1], data[2][1])['x_norm_clstoken']]
            b = [o['x_norm_clstoken'] for o in model.forward_features_list([data[0], data[1]], list(data[2]), [data[3], None])]
        difference = max((x - y).abs().max().item() for x, y in zip(a, b))
        assert difference < 1e-4, f"packed and separate outputs differ by {difference}"
        model.train()
        seconds = timed(model, data, args.repeats)
        print(f"{arch:10s} {batch:5d} {seconds[False]:13.3f} {seconds[True]:11.3f} {seconds[True] / seconds[False]:18.2f}")


if __name__ == '__main__': main()
