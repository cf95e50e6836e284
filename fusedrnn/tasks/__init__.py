"""End-to-end tasks behind `fusedrnn train ...` and `fusedrnn predict ...`.

Each task module exposes add_train_arguments(parser), train(args) -> int and, where it has one,
add_predict_arguments(parser), predict(args) -> int.
"""
