"""SPCT training stages on TRL: rft (rejective sampling data), sft (SFTTrainer), rl (GRPOTrainer, rule reward)."""
