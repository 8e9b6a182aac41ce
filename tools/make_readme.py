"""Write README.md from nbs/index.ipynb without Quarto (which cannot be installed on every machine).

Markdown cells are copied as they are, except that relative picture links (`![..](images/x.png)`,
relative to `nbs/`) are rewritten relative to the repository root (`nbs/images/x.png`), so the
same pictures show in README.md and on the docs site; code cells that are not hidden become
```python blocks followed by their text output. Run with `--check` to fail when README.md is out
of date or links a picture that does not exist."""
import re, sys
from pathlib import Path
from fastcore.nbio import read_nb

root = Path(__file__).resolve().parent.parent
HIDDEN = ('#| hide', '#|hide', '#| export', '#|export', '#| exporti', '#| eval: false', '#| default_exp')

def _text_output(cell):
    "Plain-text outputs of a code cell (streams and text/plain results)."
    parts = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': parts.append(''.join(o.get('text', '')))
        elif 'data' in o and 'text/plain' in o['data'] and not any(k.startswith('image/') for k in o['data']):
            parts.append(''.join(o['data']['text/plain']))
    return ''.join(parts).rstrip()

_PICTURE = re.compile(r'(!\[[^\]]*\]\()([^)\s]+)(\))')

def _from_root(markdown:str, nb_dir:Path) -> str:
    "Relative picture links of a notebook in `nb_dir`, rewritten relative to the repository root"
    def fix(m):
        target = m.group(2)
        if re.match(r'^([a-z][a-z0-9+.-]*:|/|#)', target, re.I): return m.group(0)      # URLs, absolute, anchors
        return m.group(1) + (nb_dir / target).resolve().relative_to(root).as_posix() + m.group(3)
    return _PICTURE.sub(fix, markdown)

def missing_pictures(markdown:str) -> list[str]:
    "Relative picture links in README text whose file does not exist"
    return [t for t in (m.group(2) for m in _PICTURE.finditer(markdown))
            if not re.match(r'^([a-z][a-z0-9+.-]*:|/|#)', t, re.I) and not (root / t).is_file()]

def readme_text(nb_path=root/'nbs'/'index.ipynb'):
    "The README for the notebook at `nb_path`."
    out = ['<!-- WARNING: generated from nbs/index.ipynb by tools/make_readme.py; edit the notebook -->']
    for cell in read_nb(nb_path).cells:
        src = cell.source.strip()
        if not src: continue
        if cell.cell_type == 'markdown': out.append(_from_root(src, Path(nb_path).parent))
        elif cell.cell_type == 'code' and not any(l.strip().startswith(HIDDEN) for l in src.splitlines()):
            out.append(f'```python\n{src}\n```')
            text = _text_output(cell)
            if text: out.append(f'```\n{text}\n```')
    return '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    text, readme = readme_text(), root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is out of date: run `python tools/make_readme.py`')
        if missing := missing_pictures(text): sys.exit(f'README.md links pictures that do not exist: {missing}')
    else: readme.write_text(text, encoding='utf-8')
