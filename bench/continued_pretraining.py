"""Continued pretraining: does a run that continues from published weights keep the features it imports?

DINOv2 publishes the teacher's backbone alone; whoever continues pretraining from it starts the DINO and iBOT heads
from scratch, and users report that naive continuation (heads random, everything trained at once at the full
learning rate) throws the imported features away (kNN accuracy from 80 % to about 10 % in one report). This bench
measures, on phantom studies:

1. a *source* run pretrains a tiny ViT (`mri_dino.train`, the probe bench's prostate-centred views) and its teacher
   backbone is written as DINOv2 publishes one: a plain torch-hub state dict, no heads, no centres;
2. three runs continue from it for the same number of steps, same seed, same data:
   - `naive`: `student.pretrained_weights` alone: heads random, backbone trained from the first step at the full rate;
   - `recipe`: the same weights with `optim.frozen_backbone_epochs` (heads warm up on a frozen backbone),
     `optim.backbone_lr_mult` 0.1 and `optim.layerwise_decay` 0.9;
   - `ssl_state`: the source *run folder* instead (its `ssl_state.safetensors`: backbone, heads and centres), trained
     like `naive` (no freezing, full rate): what continuing with the heads intact does;
3. each backbone (teacher and student), and the source's architecture at its initialisation (`random`, for scale),
   goes through the probe bench's protocol: CLS (and mean patch) features of every ROI slice averaged per study,
   weighted kNN (k=20, T=0.07), k-fold cross-validation; and the features' drift from the source (1 - mean cosine
   similarity of the CLS features of the same slices).

The label is `large_gland` (prostate volume above the median of the studies; `--label lesion` takes the phantom's
lesion label, whose few-voxel lesions the short source run's features do not separate: kNN at chance). The recipe
passes when its teacher's kNN balanced accuracy falls by at most --margin from the source's, on CLS and on patch
features. The table says what naive does, whatever it does.

    PYTHONPATH=. python bench/continued_pretraining.py                 # ~15 minutes on 2 shared CPU cores
    PYTHONPATH=. python bench/continued_pretraining.py --continue-epochs 6 --margin 0.05
"""
import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mri_dino.config import load_config
from mri_dino.features import evaluation_table
from mri_dino.loading import load_backbone
from mri_dino.phantom import make_phantom_dataset
from mri_dino.preprocess import preprocess_dataset
from mri_dino.probes import cache_features, probe_cache
from mri_dino.train import train

from probe_pretrained_vs_random import PROSTATE_VIEWS, random_backbone   # the probe bench's (bench/ is on the path when a script here runs)

KINDS = ('cls', 'patch')   # the features probed


def run(data:Path, cache:Path, output:Path, args, *overrides) -> Path:
    "One pretraining run (quiet but for its time); returns its folder"
    settings = [f'data.root={data}', f'data.cache_dir={cache}', f'train.output_dir={output}', f'train.OFFICIAL_EPOCH_LENGTH={args.epoch_length}',
                f'train.seed={args.seed}', 'data.restrict=roi', 'data.margin=6.0', 'train.tensorboard=false', 'train.checkpoint_every_steps=0',
                'train.attention_map=false', 'train.collapse_every=0', 'train.print_every_steps=0', f'train.num_workers={args.workers}',
                'train.centering=centering', *PROSTATE_VIEWS, *overrides, *args.overrides]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()): learn = train(load_config(None, settings))
    print(f"{output.name}: {learn.step} steps in {time.perf_counter() - start:.0f} s", flush=True)
    return output


def probe(backbone, cache:Path, labels:pd.DataFrame, args) -> tuple[dict, np.ndarray]:
    "kNN balanced accuracy (study means of the ROI slices, k-fold CV; mean and std over folds) per feature kind, and the CLS features of every slice"
    features, scores = cache_features(backbone, cache, batch_size=64), {}
    for kind in KINDS:
        metrics = probe_cache(backbone, cache, args.label, labels, ('knn',), kind=kind, level='study', features=features)['knn'].metrics
        scores[kind], scores[f'{kind}_std'] = metrics.loc['mean', 'balanced_accuracy'], metrics.loc['std', 'balanced_accuracy']
    return scores, np.asarray(features.get('cls'), dtype=np.float64)


def drift(features:np.ndarray, reference:np.ndarray) -> float:
    "1 - mean cosine similarity of the same slices' features"
    a = features / np.linalg.norm(features, axis=1, keepdims=True)
    b = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    return float(1 - (a * b).sum(1).mean())


def main(args) -> int:
    out = Path(args.out)
    data, cache = out / 'phantom', out / 'cache'
    if not (cache / 'index.csv').exists():
        make_phantom_dataset(data, n=args.studies, seed=args.seed, n_folds=args.folds)
        print(preprocess_dataset(data, cache, workers=args.workers or 1, progress=False), flush=True)
    source = out / 'source'
    if not (source / 'ssl_state.safetensors').exists(): run(data, cache, source, args, f'optim.epochs={args.source_epochs}')
    hub = out / 'dinov2_format.pth'                        # as DINOv2 publishes a backbone: the teacher's, no heads, no centres
    teacher = load_backbone(source)
    torch.save({k: v for k, v in teacher.state_dict().items() if k != 'missing_modality_embed'}, hub)

    epochs = [f'optim.epochs={args.continue_epochs}', f'optim.warmup_epochs={args.warmup_epochs}', f'optim.base_lr={args.base_lr}']
    variants = {'naive': [f'student.pretrained_weights={hub}', 'optim.layerwise_decay=1.0'],
                'recipe': [f'student.pretrained_weights={hub}', f'optim.frozen_backbone_epochs={args.frozen_epochs}',
                           f'optim.backbone_lr_mult={args.backbone_lr_mult}', 'optim.layerwise_decay=0.9'],
                'ssl_state': [f'student.pretrained_weights={source}', 'optim.layerwise_decay=1.0']}
    for name, overrides in variants.items(): run(data, cache, out / name, args, *overrides, *epochs)

    labels = evaluation_table(cache)
    labels['large_gland'] = (labels.prostate_volume_ml > labels.prostate_volume_ml.median()).astype(int)
    print(f"{len(labels)} studies, {int(labels[args.label].sum())} with {args.label}, {args.folds} folds", flush=True)
    reference, reference_features = probe(teacher, cache, labels, args)
    rows = [dict(variant='source', backbone='teacher', **reference, drift=0.0)]
    scores, features = probe(random_backbone(teacher), cache, labels, args)
    rows.append(dict(variant='random', backbone='initial', **scores, drift=drift(features, reference_features)))
    for name in variants:
        for which in ('teacher', 'student'):
            scores, features = probe(load_backbone(out / name, which=which), cache, labels, args)
            rows.append(dict(variant=name, backbone=which, **scores, drift=drift(features, reference_features)))
    table = pd.DataFrame(rows)
    shown = table[['variant', 'backbone']].copy()
    for kind in KINDS:
        table[f'{kind}_change'] = table[kind] - reference[kind]
        shown[f'kNN {kind}'] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(table[kind], table[f'{kind}_std'])]
        shown[f'change {kind}'] = [f"{c:+.3f}" for c in table[f'{kind}_change']]
    shown['feature drift'] = [f"{d:.3f}" for d in table.drift]
    print(f"\n{args.label}: kNN balanced accuracy on CLS and mean patch features ({args.folds}-fold CV, mean ± std over folds); "
          f"change = minus the source's; feature drift = 1 - cosine similarity to the source's CLS features of the same slices; "
          f"{args.continue_epochs} epochs of {args.epoch_length} steps continued, {args.frozen_epochs} of them frozen in the recipe")
    print(shown.to_string(index=False))
    recipe = table[(table.variant == 'recipe') & (table.backbone == 'teacher')]
    fall = min(recipe[f'{kind}_change'].item() for kind in KINDS)
    passed = fall >= -args.margin
    print(f"\nrecipe (teacher): largest change {fall:+.3f}, margin {args.margin}: {'PASS' if passed else 'FAIL'}", flush=True)
    (out / 'summary.json').write_text(json.dumps(dict(args=vars(args), rows=table.to_dict('records'), passed=passed), indent=1))
    return 0 if passed else 1


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='bench/results/continued_pretraining')
    parser.add_argument('--studies', type=int, default=60)
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--label', default='large_gland', help="large_gland (derived: prostate volume above the median) or a labels.csv column")
    parser.add_argument('--epoch-length', type=int, default=16, help='optimiser steps per epoch')
    parser.add_argument('--source-epochs', type=int, default=20, help='epochs of the source pretraining')
    parser.add_argument('--continue-epochs', type=int, default=5, help='epochs of every continued run')
    parser.add_argument('--frozen-epochs', type=float, default=2, help='recipe: optim.frozen_backbone_epochs')
    parser.add_argument('--backbone-lr-mult', type=float, default=0.1, help='recipe: optim.backbone_lr_mult')
    parser.add_argument('--warmup-epochs', type=float, default=1, help='optim.warmup_epochs of the continued runs')
    parser.add_argument('--base-lr', type=float, default=0.004, help='optim.base_lr of the continued runs (the source\'s default)')
    parser.add_argument('--margin', type=float, default=0.05, help='largest fall of the recipe\'s kNN balanced accuracy that passes')
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1, help='torch threads (1 on a shared CPU)')
    parser.add_argument('overrides', nargs='*', help='config overrides of every run, key.sub=value')
    ARGS = parser.parse_args()
    torch.set_num_threads(ARGS.threads)
    sys.exit(main(ARGS))
