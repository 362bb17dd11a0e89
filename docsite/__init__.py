"""The docs site's MkDocs hooks and Griffe extension (mkdocs.yml, `make docs`)."""
