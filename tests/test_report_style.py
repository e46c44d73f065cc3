"""Figure styles and legend names come from what each method file declares, not from file names."""

from sparsebench import registry
from sparsebench.report import style


def test_styles_know_every_method_by_its_declared_name_not_its_file_name():
    declared = set(registry.methods())
    assert style._known_method_names() == declared
    stems = {e.file.stem for e in registry.methods().values()}
    differ = stems - declared
    assert "magnitude_global" in differ  # the file; its method is magnitude-global
    assert not differ & style._known_method_names()


def test_every_method_has_its_own_style_and_its_declared_label():
    style.assign_styles([])
    names = sorted(registry.methods())
    pairs = [tuple(style.method_style(n).values()) for n in names]
    assert len(set(pairs)) == len(pairs)
    for name, entry in registry.methods().items():
        assert style.method_label(name) == (entry.cls.display_name or name)
    assert style.method_label("sparsegpt") == "SparseGPT" and style.method_label("magnitude") == "magnitude"
    assert style.method_label("not-a-method") == "not-a-method"
    assert "2301.00774" in style.method_citation("sparsegpt")
