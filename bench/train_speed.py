"""Training speed of mri_dino's SSL learner against a plain PyTorch loop doing the same work.

Both sides run the same `SSLModel` (student + EMA teacher, DINO + iBOT + KoLeo) on the same
pre-made batch (2 global crops of 224 px and 8 local crops of 98 px per sample, 3 channels) with
AdamW, gradient clipping and the teacher update; the learner adds fastai's loop and our callbacks
(schedules, NaN guard, metrics to CSV/JSON/TensorBoard, progress bar). Data loading is not
measured (see the augmentation benchmarks for that). Prints steps/s and samples/s of each and
their ratio; on a GPU also peak memory and model FLOPs utilisation (MFU, from PyTorch's FLOP
counter over one step, against the GPU's dense bf16 peak).

    python bench/train_speed.py                                  # ViT-S/14, batch 8, CPU
    python bench/train_speed.py --arch vit_base --device cuda --precision bf16 --batch 64
"""
import argparse
import tempfile
import time
import warnings

import torch
from omegaconf import OmegaConf

from mri_dino.augment import MultiViewCrops
from mri_dino.learner import SSLDataLoaders, ssl_learner, fit_ssl
from mri_dino.ssl_model import SSLModel
from mri_dino.masking import collate_views
from mri_dino.backbones import build_backbone
from fastai.callback.core import Callback

PEAK_BF16_TFLOPS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0, 'L40S': 362.0, 'A10G': 125.0, 'L4': 121.0}


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='vit_small')
    parser.add_argument('--patch-size', type=int, default=14)
    parser.add_argument('--batch', type=int, default=8, help='samples per step')
    parser.add_argument('--global-size', type=int, default=224)
    parser.add_argument('--local-size', type=int, default=98)
    parser.add_argument('--local-crops', type=int, default=8)
    parser.add_argument('--prototypes', type=int, default=4096)
    parser.add_argument('--steps', type=int, default=5, help='timed steps')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'bf16'])
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    return parser.parse_args()


def config(args):
    return OmegaConf.create(dict(
        data=dict(modalities=['t2w', 'adc', 'dwi']),
        student=dict(arch=args.arch, patch_size=args.patch_size, img_size=args.global_size, in_chans=3, drop_path_rate=0.1,
                     fusion='stack'),
        dino=dict(head_n_prototypes=args.prototypes, head_hidden_dim=2048, head_bottleneck_dim=256, koleo_loss_weight=0.1),
        ibot=dict(loss_weight=1.0, separate_head=False),
        teacher=dict(),
        optim=dict(epochs=1, base_lr=0.004, scaling_rule='sqrt_wrt_1024', warmup_epochs=0, clip_grad=3.0, freeze_last_layer_epochs=0),
        train=dict(batch_size_per_gpu=args.batch, centering='centering', checkpoint_every_steps=0, print_every_steps=0,
                   auto_resume=False)))


def make_batch(args):
    "One collated batch of random 3-channel images"
    crops = MultiViewCrops(global_crops_size=args.global_size, local_crops_size=args.local_size, local_crops_number=args.local_crops)
    generator = torch.Generator().manual_seed(0)
    samples = [dict(image=torch.rand(3, 256, 256, generator=generator), modality_mask=torch.ones(3, dtype=torch.bool),
                    roi_box=None, study_id=f's{i}') for i in range(args.batch)]
    return collate_views([crops(s) for s in samples], patch_size=args.patch_size)


def to_device(batch, device):
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_model(cfg, device):
    torch.manual_seed(0)
    return SSLModel.from_config(cfg, build_backbone(cfg.student)).to(device)


def autocast(args):
    return torch.autocast(args.device.split(':')[0], dtype=torch.bfloat16, enabled=args.precision == 'bf16')


def synchronize(device):
    if device.startswith('cuda'): torch.cuda.synchronize()


def plain_step(model, optimizer, batch, args, momentum:float=0.996):
    "One step of the bare loop: forward under autocast, backward, clipping at 3, AdamW, the teacher's EMA; (loss, loss terms)"
    with autocast(args): terms = model(batch, teacher_temp=0.04)
    loss = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.student.parameters(), 3.0)
    optimizer.step()
    model.update_teacher(momentum)
    return loss, terms


def plain_loop(args, cfg, batch):
    "The baseline: the same step written as a bare PyTorch loop; seconds per step"
    model = make_model(cfg, args.device).train()
    optimizer = torch.optim.AdamW(model.student.parameters(), lr=1e-4, weight_decay=0.04)
    times = []
    for step in range(args.warmup + args.steps):
        synchronize(args.device); start = time.perf_counter()
        loss, _ = plain_step(model, optimizer, batch, args)
        float(loss)                                   # wait for the step, as the learner's logging does
        synchronize(args.device)
        if step >= args.warmup: times.append(time.perf_counter() - start)
    return times


class StepTimer(Callback):
    "Wall time of each training step, from before_batch to after_batch"
    order = 100
    def __init__(self, device): self.device, self.times = device, []
    def before_batch(self): synchronize(self.device); self.start = time.perf_counter()
    def after_batch(self): synchronize(self.device); self.times.append(time.perf_counter() - self.start)


class RepeatBatch(torch.utils.data.Dataset):
    "A data set whose every item is the same pre-made batch (the DataLoader's collate returns it as is)"
    def __init__(self, batch, length): self.batch, self.length = batch, length
    def __len__(self): return self.length
    def __getitem__(self, i): return self.batch


def learner_loop(args, cfg, batch):
    "Our SSLLearner with its callbacks; seconds per step"
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=args.device == 'cpu', mixed_precision='bf16' if args.precision == 'bf16' else 'no')
    steps = args.warmup + args.steps
    loader = torch.utils.data.DataLoader(RepeatBatch(batch, steps), batch_size=None, collate_fn=lambda b: b)
    model = make_model(cfg, 'cpu')
    timer = StepTimer(args.device)
    with tempfile.TemporaryDirectory() as output:
        learn = ssl_learner(cfg, model, SSLDataLoaders(loader), output, accelerator, extra_cbs=[timer])
        fit_ssl(learn)
    return timer.times[args.warmup:]


def step_flops(args, cfg, batch):
    "FLOPs of one training step (forward and backward of student and teacher), by PyTorch's FLOP counter"
    from torch.utils.flop_counter import FlopCounterMode
    model = make_model(cfg, args.device).train()
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast(args): terms = model(batch, teacher_temp=0.04)
        sum(terms.values()).backward()
    return counter.get_total_flops()


def main():
    args = parse()
    warnings.filterwarnings('ignore')
    if args.threads: torch.set_num_threads(args.threads)
    cfg = config(args)
    batch = make_batch(args)
    device_batch = to_device(batch, args.device)
    name = torch.cuda.get_device_name() if args.device.startswith('cuda') else f'CPU, {torch.get_num_threads()} threads'
    print(f"{args.arch}/{args.patch_size}, batch {args.batch} (2 x {args.global_size} px + {args.local_crops} x {args.local_size} px, "
          f"3 channels), {args.precision}, {name}; {args.warmup} warm-up + {args.steps} timed steps")
    # plain, learner, plain again: the machine's state (other load, allocator, caches) drifts, so the
    # plain loop's time is the mean of a run before and a run after the learner's
    if args.device.startswith('cuda'): torch.cuda.reset_peak_memory_stats()
    plain_before = plain_loop(args, cfg, device_batch)
    if args.device.startswith('cuda'): plain_memory = torch.cuda.max_memory_allocated() / 2**30; torch.cuda.reset_peak_memory_stats()
    ours = learner_loop(args, cfg, batch)
    plain_after = plain_loop(args, cfg, device_batch)
    median = lambda values: sorted(values)[len(values) // 2]
    print(f"  (plain loop before / after the learner: {median(plain_before):.3f} / {median(plain_after):.3f} s/step)")
    plain = plain_before + plain_after
    rows = [('plain PyTorch loop', median(plain)), ('SSLLearner + callbacks', median(ours))]
    for label, seconds in rows:
        print(f"  {label:24s} {1 / seconds:7.3f} steps/s  {args.batch / seconds:8.2f} samples/s  ({seconds:.3f} s/step, median)")
    print(f"  ratio learner / plain: {rows[0][1] / rows[1][1]:.3f} (1 = no overhead)")
    if args.device.startswith('cuda'):
        memory = torch.cuda.max_memory_allocated() / 2**30
        flops = step_flops(args, cfg, device_batch)
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        for label, seconds in rows:
            achieved = flops / seconds / 1e12
            mfu = f"{100 * achieved / peak:.1f} % of {peak:.0f} TFLOP/s" if peak else 'peak unknown'
            print(f"  {label:24s} {achieved:7.1f} TFLOP/s achieved, MFU {mfu}")
        print(f"  peak memory: plain {plain_memory:.2f} GiB, learner {memory:.2f} GiB; {flops / 1e12:.2f} TFLOP per step")


if __name__ == '__main__':
    main()
