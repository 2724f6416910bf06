"""Test and benchmark fixtures that are not library code: a fake OpenAI-compatible chat server (`chat_server`), a
tiny BERT in the layout the text tower loads (`tiny_bert`), synthetic ingest parts for training (`training_data`)
and a seconds-long sweep objective (`toy_objective`). Nothing here ships with a registered model."""
