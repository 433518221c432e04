"""Beyond one machine, on Ray (the `voxhost[ray]` extra): `serve` runs the engines as Ray Serve
deployments behind the same OpenAI API; `data` transcribes a batch of files on Ray Data.
Nothing here has engine code of its own: both wrap the engine classes the local workers use."""
