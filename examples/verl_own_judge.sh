#!/usr/bin/env bash
# GRPO in verl (checked: 0.9.1) with the judge served by verl itself: verl starts vLLM replicas of
# the judge behind its reward router, and spct's reward function builds spct's judging prompt,
# sends it through that router, parses the scores and votes over k samples. No second server.
#
#   POLICY=Qwen/Qwen2.5-1.5B-Instruct JUDGE=path/to/spct-judge bash examples/verl_own_judge.sh
#
# Data: verl's parquet format, with the question in each row's extra_info["question"] (verl
# passes the reward function the response and extra_info, not the prompt). Check the reward
# path first against any OpenAI-compatible server: examples/verl_own_judge_check.py.
set -euo pipefail

: "${POLICY:?the policy model}" "${JUDGE:?the judge model (a chat model that writes spct judgments)}"
TRAIN=${TRAIN:-$HOME/data/train.parquet}
VAL=${VAL:-$HOME/data/val.parquet}

python3 -m verl.trainer.main_ppo \
  algorithm.adv_estimator=grpo \
  data.train_files="$TRAIN" data.val_files="$VAL" \
  data.train_batch_size=64 data.max_prompt_length=1024 data.max_response_length=1024 \
  actor_rollout_ref.model.path="$POLICY" \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.n=4 \
  reward.reward_model.enable=True \
  reward.reward_model.model_path="$JUDGE" \
  reward.reward_model.rollout.name=vllm \
  reward.reward_model.rollout.tensor_model_parallel_size=1 \
  reward.reward_model.rollout.gpu_memory_utilization=0.4 \
  reward.custom_reward_function.path=pkg://spct.integrations.verl \
  reward.custom_reward_function.name=compute_score_async \
  +reward.custom_reward_function.reward_kwargs.k=4 \
  +reward.custom_reward_function.reward_kwargs.max_new_tokens=1024 \
  trainer.n_gpus_per_node=8 trainer.nnodes=1 \
  "$@"
# To judge each prompt's n responses together (listwise), add:
#   reward.reward_manager.source=importlib \
#   reward.reward_manager.module.path=pkg://spct.integrations.verl \
#   reward.reward_manager.name=SPCTListwiseRewardManager
