"""Protocol front-ends. They parse and validate, call the model manager, and format; nothing more."""
