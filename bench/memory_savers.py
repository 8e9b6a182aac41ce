"""Step time and peak memory of a training step with the memory savers off and on: activation checkpointing
(`student.activation_checkpointing`), `torch.compile` of the blocks (`train.compile`), and both.

Each setting runs in a fresh process (peak memory is per process) on the same pre-made batch (2 global and
8 local crops per sample, 3 channels): forward and backward of student and teacher, AdamW, the teacher's EMA.
Peak memory: on a GPU `torch.cuda.max_memory_allocated`; on a CPU the growth of the process's peak resident set
(`ru_maxrss`) over what it held before the first step. Prints each setting side by side with "off" (ratios);
the GPU rows are marked open when the machine has no GPU.

    python bench/memory_savers.py                                   # ViT-S/14, batch 4, CPU
    python bench/memory_savers.py --arch vit_base --batch 64 --device cuda --precision bf16
"""
import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

import torch

SETTINGS = {'off': {}, 'activation checkpointing': {'student.activation_checkpointing': True},
            'compile': {'train.compile': True},
            'both': {'student.activation_checkpointing': True, 'train.compile': True}}


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='vit_small')
    parser.add_argument('--patch-size', type=int, default=14)
    parser.add_argument('--batch', type=int, default=4, help='samples per step')
    parser.add_argument('--global-size', type=int, default=224)
    parser.add_argument('--local-size', type=int, default=98)
    parser.add_argument('--local-crops', type=int, default=8)
    parser.add_argument('--prototypes', type=int, default=4096)
    parser.add_argument('--steps', type=int, default=3, help='timed steps')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first (compile happens here)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'bf16'])
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--setting', default=None, choices=list(SETTINGS), help='(internal) measure one setting in this process')
    return parser.parse_args()


def config(args, setting):
    "The config of one setting (nested dicts; the other keys are the defaults)"
    cfg = dict(data=dict(modalities=['t2w', 'adc', 'dwi']),
               student=dict(arch=args.arch, patch_size=args.patch_size, img_size=args.global_size, in_chans=3, drop_path_rate=0.1,
                            fusion='stack', activation_checkpointing=False),
               dino=dict(head_n_prototypes=args.prototypes, head_hidden_dim=2048, head_bottleneck_dim=256, koleo_loss_weight=0.1),
               ibot=dict(loss_weight=1.0, separate_head=False), train=dict(centering='centering', compile=False))
    for key, value in SETTINGS[setting].items():
        section, name = key.split('.')
        cfg[section][name] = value
    return cfg


def make_batch(args):
    "One collated batch of random 3-channel images, on the device"
    from mri_dino.augment import MultiViewCrops
    from mri_dino.masking import collate_views
    crops = MultiViewCrops(global_crops_size=args.global_size, local_crops_size=args.local_size, local_crops_number=args.local_crops)
    generator = torch.Generator().manual_seed(0)
    samples = [dict(image=torch.rand(3, 256, 256, generator=generator), modality_mask=torch.ones(3, dtype=torch.bool),
                    roi_box=None, study_id=f's{i}') for i in range(args.batch)]
    batch = collate_views([crops(s) for s in samples], patch_size=args.patch_size)
    return {k: v.to(args.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def synchronize(device):
    if device.startswith('cuda'): torch.cuda.synchronize()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024       # Linux: KiB


def measure(args):
    "One setting, in this process: median seconds per step and peak memory (MiB) of the steps"
    from mri_dino.ssl_model import SSLModel
    from mri_dino.backbones import build_backbone
    from mri_dino.scaling import memory_savers
    cfg = config(args, args.setting)
    torch.manual_seed(0)
    model = SSLModel.from_config(cfg, build_backbone(cfg['student'])).to(args.device).train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        memory_savers(cfg, model, args.device)
    notes = [str(w.message) for w in caught if 'train.compile' in str(w.message)]
    optimizer = torch.optim.AdamW(model.student.parameters(), lr=1e-4, weight_decay=0.04)
    batch = make_batch(args)
    before = peak_rss_mib()
    if args.device.startswith('cuda'): torch.cuda.reset_peak_memory_stats(); held = torch.cuda.memory_allocated() / 2**20
    times = []
    for step in range(args.warmup + args.steps):
        synchronize(args.device); start = time.perf_counter()
        with torch.autocast(args.device.split(':')[0], dtype=torch.bfloat16, enabled=args.precision == 'bf16'):
            terms = model(batch, teacher_temp=0.04)
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.update_teacher(0.996)
        float(loss)
        synchronize(args.device)
        if step >= args.warmup: times.append(time.perf_counter() - start)
    if args.device.startswith('cuda'): memory = torch.cuda.max_memory_allocated() / 2**20 - held
    else: memory = peak_rss_mib() - before
    return dict(seconds=sorted(times)[len(times) // 2], memory_mib=memory, loss=float(loss), notes=notes)


def main():
    args = parse()
    warnings.filterwarnings('ignore')
    if args.threads: torch.set_num_threads(args.threads)
    if args.setting is not None: print(json.dumps(measure(args))); return
    name = torch.cuda.get_device_name() if args.device.startswith('cuda') else f'CPU, {args.threads or torch.get_num_threads()} threads'
    print(f"{args.arch}/{args.patch_size}, batch {args.batch} (2 x {args.global_size} px + {args.local_crops} x {args.local_size} px, "
          f"3 channels), {args.precision}, {name}; {args.warmup} warm-up + {args.steps} timed steps, each setting in its own process")
    passed = [a for a in sys.argv[1:]]
    results = {}
    for setting in SETTINGS:
        run = subprocess.run([sys.executable, __file__, *passed, '--setting', setting], capture_output=True, text=True)
        if run.returncode != 0: print(f"  {setting}: failed\n{run.stderr[-2000:]}"); continue
        results[setting] = json.loads(run.stdout.strip().splitlines()[-1])
    off = results.get('off')
    memory_kind = 'peak allocated' if args.device.startswith('cuda') else 'peak RSS growth'
    print(f"  {'setting':26s} {'s/step':>8s} {'x off':>7s} {memory_kind + ' MiB':>24s} {'x off':>7s}  loss")
    for setting, row in results.items():
        ratio_time = row['seconds'] / off['seconds'] if off else float('nan')
        ratio_memory = row['memory_mib'] / off['memory_mib'] if off and off['memory_mib'] > 0 else float('nan')
        print(f"  {setting:26s} {row['seconds']:8.3f} {ratio_time:7.2f} {row['memory_mib']:24.0f} {ratio_memory:7.2f}  {row['loss']:.5f}")
        for note in row['notes']: print(f"    note: {note}")
    if not args.device.startswith('cuda'):
        print("  GPU rows (step time, max_memory_allocated, bf16): open, no GPU on this machine "
              "(run: python bench/memory_savers.py --device cuda --precision bf16)")


if __name__ == '__main__':
    main()
