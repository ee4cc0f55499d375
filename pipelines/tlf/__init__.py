"""The clinical study report package: numbered tables, listings and figures (RTF and HTML), the ADaM
datasets as SAS XPORT v5 files and their Define-XML 2.1. Dagster-free.

* :mod:`.shells` - one YAML layout per output (``shells/*.yaml``): number, title, population,
  footnotes, source datasets, derivation in words, builder;
* :mod:`.builders` - warehouse -> rows or figure per output (absent data -> an 'Absent' reason);
* :mod:`.rtf` (rtflite) and :mod:`.html` - renderers; :mod:`.figures` - the Kaplan-Meier plot;
* :mod:`.submission` (``adam.yaml``: ADaM names and labels; checked XPORT v5 rules) and :mod:`.define`;
* :func:`.package.build_package` - all of it for one study into one folder with an index.
"""
