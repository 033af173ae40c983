"""The use cases: one module for each thing a person does with the tool. Each opens what it needs
(the store, a transport), closes it, and maps foreign exceptions to the package's, once; cli.py
and web/ call one of them and present its typed result."""
