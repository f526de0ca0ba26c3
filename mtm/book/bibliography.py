"""The bibliography's labels in the citations' style: a Sphinx extension (``_config.yml`` loads it)
that registers with pybtex an author-year label style (``Zhang et al., 2024``), a sorting by those
labels, and the ``plain`` formatting style with both (``mtm_author_year``), which
``book/bibliography.md`` uses, so the list reads like the citations (``bibtex_reference_style:
author_year``) instead of numbering them."""

from __future__ import annotations

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle

STYLE = "mtm_author_year"


def _surname(person) -> str:
    """A person's last name as printed, braces (``{International Brain Laboratory}``) removed."""
    return " ".join(person.prelast_names + person.last_names).replace("{", "").replace("}", "")


def author_year(entry) -> str:
    """``Surname, 2024``, ``A and B, 2024`` or ``A et al., 2024`` (an entry's authors, or editors)."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people if _surname(p) != "others"]
    if not names:
        who = entry.fields.get("key", entry.key)
    elif len(names) == 1 and len(people) == 1:
        who = names[0]
    elif len(names) == 2 and len(people) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Author-year labels; two entries with one label become ``Ye et al., 2023a`` and ``2023b``."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year(entry) for entry in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label


class AuthorYearSortingStyle(BaseSortingStyle):
    """Entries in the order of their labels (first author, "and" before "et al.", year), then titles."""

    def sorting_key(self, entry):
        return author_year(entry).lower(), entry.fields.get("title", "").lower()


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` formatting with author-year labels, sorted by them."""

    default_label_style = STYLE
    default_sorting_style = STYLE


def setup(app=None) -> dict:
    """Register the label style and the formatting style with pybtex (a Sphinx extension's entry point)."""
    register_plugin("pybtex.style.labels", STYLE, AuthorYearLabelStyle, force=True)
    register_plugin("pybtex.style.sorting", STYLE, AuthorYearSortingStyle, force=True)
    register_plugin("pybtex.style.formatting", STYLE, AuthorYearStyle, force=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
