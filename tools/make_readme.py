"""Write README.md from nbs/index.ipynb without Quarto (which cannot be installed on every machine).

Markdown cells are copied as they are; code cells that are not hidden become ```python blocks
followed by their text output. Run with `--check` to fail when README.md is out of date."""
import sys
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

def readme_text(nb_path=root/'nbs'/'index.ipynb'):
    "The README for the notebook at `nb_path`."
    out = ['<!-- WARNING: generated from nbs/index.ipynb by tools/make_readme.py; edit the notebook -->']
    for cell in read_nb(nb_path).cells:
        src = cell.source.strip()
        if not src: continue
        if cell.cell_type == 'markdown': out.append(src)
        elif cell.cell_type == 'code' and not any(l.strip().startswith(HIDDEN) for l in src.splitlines()):
            out.append(f'```python\n{src}\n```')
            text = _text_output(cell)
            if text: out.append(f'```\n{text}\n```')
    return '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    text, readme = readme_text(), root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit('README.md is out of date: run `python tools/make_readme.py`')
    else: readme.write_text(text)
