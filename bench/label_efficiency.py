"""Label efficiency: fine-tuning a briefly pretrained backbone and the same architecture at random initialisation on
1, 2, 4, 8 and all labelled training studies, on a phantom task that intensity alone cannot solve.

1. two sets of phantom studies with *isointense* lesions (`make_phantom_dataset(..., lesion_texture=0.4)`: a lesion has
   its zone's mean signal on every sequence and differs only by a fine 2 mm checkerboard texture), each preprocessed
   into a cache: an unlabelled set for pretraining, a labelled set (lesion in half the studies, 4 folds) downstream;
2. pretraining with `mri_dino.train` on the unlabelled cache only (its default config: DINO + iBOT + KoLeo, a vit_tiny
   with 8-pixel patches on 64-pixel ROI slices; views centred on the prostate as in probe_pretrained_vs_random.py);
3. for each fold as validation and each training-set size, `finetune_cache` (the frozen backbone; `--unfreeze` trains
   it too) with `train_studies=N` (a fixed, seeded, label-stratified subset of the other folds' studies):
   classification of `lesion` (attention-MIL, AUC) on every labelled study, segmentation of the `lesion` map (Dice) on
   the studies with a lesion; the same for the teacher of the run and a random backbone of the same config;
4. one table: mean ± sd over the folds, pretrained next to random, for every size.

    PYTHONPATH=. python bench/label_efficiency.py                       # about 40 minutes on 2 busy CPU cores
    PYTHONPATH=. python bench/label_efficiency.py --run RUN             # fine-tune an existing run's teacher instead
    PYTHONPATH=. python bench/label_efficiency.py optim.epochs=30       # trailing key=value: pretraining overrides

Fewer than N training studies in a fold (`all` is every training study of the fold) are reported as such. The
fine-tunes run `--ft-epochs` epochs on all training studies and proportionally more on fewer (at most `--max-boost`
times), so that small subsets get more optimiser steps; fastai validates after every epoch, which is most of the time
on a CPU, hence only `--eval-folds` of the folds serve as validation by default.
"""
import argparse
import contextlib
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


from mri_dino.config import load_config
from mri_dino.features import evaluation_table
from mri_dino.finetune import finetune_cache
from mri_dino.loading import load_backbone
from mri_dino.phantom import make_phantom_dataset
from mri_dino.preprocess import preprocess_dataset
from mri_dino.train import train

from probe_pretrained_vs_random import random_backbone   # the same architecture at the run's own initialisation (bench/ is on the path when a script here runs)

# views centred on the prostate, where the lesions are (as in probe_pretrained_vs_random.py)
PROSTATE_VIEWS = ['crops.global_crops_scale=[0.15,0.35]', 'crops.local_crops_scale=[0.03,0.1]', 'crops.crop_from_tumor_foreground=1.0']


def phantom_cache(root:Path, n:int, seed:int, args, **kwargs) -> Path:
    "Phantom studies with isointense lesions in root/'raw', preprocessed into root/'cache' (reused when there)"
    cache = root / 'cache'
    if not (cache / 'index.csv').exists():
        start = time.perf_counter()
        make_phantom_dataset(root / 'raw', n=n, seed=seed, lesion_texture=args.lesion_texture, **kwargs)
        report = preprocess_dataset(root / 'raw', cache, workers=args.workers, progress=False)
        print(f"{report} ({root.name}: {n} studies in {time.perf_counter() - start:.0f} s)", flush=True)
    return cache


def pretrain(cache:Path, run:Path, args) -> Path:
    "Pretrain with mri_dino.train on the unlabelled cache; returns the run folder"
    overrides = [f'data.root={cache.parent / "raw"}', f'data.cache_dir={cache}', f'train.output_dir={run}', f'optim.epochs={args.epochs}',
                 f'train.OFFICIAL_EPOCH_LENGTH={args.epoch_length}', f'train.seed={args.seed}', 'data.restrict=roi', 'data.margin=6.0',
                 'train.print_every_steps=40', 'train.tensorboard=false', 'train.checkpoint_every_steps=0', 'train.attention_map=false',
                 f'train.num_workers={args.workers}', *PROSTATE_VIEWS, *args.overrides]
    start = time.perf_counter()
    learn = train(load_config(None, overrides))
    print(f"pretrained {learn.step} steps in {time.perf_counter() - start:.0f} s -> {run}", flush=True)
    return run


def finetune(backbone, cache, task, table, fold, n, args) -> tuple[float, int]:
    "(the validation metric, training studies used) of one fine-tune of a copy of `backbone`"
    state = {k: v.clone() for k, v in backbone.state_dict().items()}      # fine-tuning may change it (--unfreeze)
    available = len(table) - int((table.fold.astype(str) == str(fold)).sum())
    used = available if n is None else min(n, available)
    epochs = min(args.max_boost * args.ft_epochs, math.ceil(args.ft_epochs * available / used))
    kwargs = dict(task='classify', label='lesion') if task == 'classify' else dict(task='segment', label_map='lesion')
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):   # fastai's epoch tables
        _, metrics = finetune_cache(backbone, cache, table=table, valid_folds=[fold], freeze=not args.unfreeze, epochs=epochs,
                                    lr=args.lr, device='cpu', seed=args.seed, max_slices=args.max_slices, train_studies=None if n is None or n >= available else n,
                                    **kwargs)
    backbone.load_state_dict(state)
    value = metrics['valid']['auc' if task == 'classify' else 'dice']
    return float(value), metrics['n_train']


def main(args):
    out = Path(args.out)
    unlabelled = phantom_cache(out / 'unlabelled', args.pretrain_studies, args.seed + 1000, args)
    labelled = phantom_cache(out / 'labelled', args.studies, args.seed, args, n_folds=args.folds, lesion_prob=0.5)
    run = Path(args.run) if args.run else (out / 'run' if (out / 'run' / 'teacher_backbone.safetensors').exists() or args.reuse
                                           else pretrain(unlabelled, out / 'run', args))
    pretrained = load_backbone(run)
    backbones = {'pretrained': pretrained, 'random': random_backbone(pretrained)}
    table = evaluation_table(labelled)
    tables = {'classify': table, 'segment': table[table.lesion == 1]}
    sizes = [int(s) for s in args.sizes.split(',')] + [None]
    folds = sorted(table.fold.unique())[:args.eval_folds or None]
    rows, start = [], time.perf_counter()
    for task, task_table in tables.items():
        for n in sizes:
            for name, backbone in backbones.items():
                values, used = [], []
                for fold in folds:
                    value, n_train = finetune(backbone, labelled, task, task_table, fold, n, args)
                    values.append(value); used.append(n_train)
                rows.append(dict(task=task, metric='AUC' if task == 'classify' else 'Dice', studies='all' if n is None else n,
                                 used='-'.join(map(str, sorted(set(used)))), backbone=name,
                                 mean=float(np.nanmean(values)), sd=float(np.nanstd(values)), values=values))
                print(f"{task} {rows[-1]['studies']:>3} studies ({rows[-1]['used']} used) {name:>10}: "
                      f"{rows[-1]['mean']:.3f} ± {rows[-1]['sd']:.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    side = frame.pivot_table(index=['task', 'metric', 'studies', 'used'], columns='backbone', values=['mean', 'sd'], aggfunc='first', sort=False)
    summary = pd.DataFrame({'pretrained': [f"{m:.3f} ± {s:.3f}" for m, s in zip(side['mean', 'pretrained'], side['sd', 'pretrained'])],
                            'random': [f"{m:.3f} ± {s:.3f}" for m, s in zip(side['mean', 'random'], side['sd', 'random'])],
                            'difference': [f"{p - r:+.3f}" for p, r in zip(side['mean', 'pretrained'], side['mean', 'random'])]},
                           index=side.index).reset_index()
    print(f"\nlesion (isointense, textured) on {len(table)} labelled phantom studies ({len(tables['segment'])} with a lesion), "
          f"folds {', '.join(map(str, folds))} of {table.fold.nunique()} as validation in turn: validation metric, mean ± sd over the folds; {'unfrozen' if args.unfreeze else 'frozen'} backbone; "
          f"studies = labelled training studies, used = what the folds had")
    print(summary.to_string(index=False), flush=True)
    (out / 'summary.json').write_text(json.dumps(dict(args=vars(args), rows=rows), indent=1))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='bench/results/label_efficiency')
    parser.add_argument('--run', default=None, help='fine-tune this run folder / backbone instead of pretraining')
    parser.add_argument('--reuse', action='store_true', help="reuse OUT/run without checking it finished")
    parser.add_argument('--studies', type=int, default=40, help='labelled phantom studies')
    parser.add_argument('--pretrain-studies', type=int, default=40, help='unlabelled phantom studies for pretraining')
    parser.add_argument('--folds', type=int, default=4)
    parser.add_argument('--sizes', default='1,2,4,8', help="training-set sizes (studies), 'all' is added")
    parser.add_argument('--lesion-texture', type=float, default=0.4, help="the lesions' checkerboard contrast")
    parser.add_argument('--epochs', type=int, default=20, help='pretraining epochs')
    parser.add_argument('--epoch-length', type=int, default=12, help='pretraining optimiser steps per epoch')
    parser.add_argument('--ft-epochs', type=int, default=3, help='fine-tuning epochs on all training studies')
    parser.add_argument('--max-boost', type=int, default=3, help='at most this many times --ft-epochs on small subsets')
    parser.add_argument('--max-slices', type=int, default=8, help='classify: slices per study bag')
    parser.add_argument('--eval-folds', type=int, default=2, help='validate on the first this many folds (0: every fold), each in turn')
    parser.add_argument('--lr', type=float, default=1e-3, help="fine-tuning: the head's peak learning rate")
    parser.add_argument('--unfreeze', action='store_true', help='fine-tune the backbone too')
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=2, help='torch threads')
    parser.add_argument('overrides', nargs='*', help='pretraining config overrides, key.sub=value')
    ARGS = parser.parse_args()
    torch.set_num_threads(ARGS.threads)
    main(ARGS)
