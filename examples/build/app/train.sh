# A stand-in for a training script: it reads what the image "installed".
echo "packages: $(ls /opt/packages | tr '\n' ' ')"
i=1
while [ "$i" -le "$EPOCHS" ]; do
    echo "epoch $i/$EPOCHS: loss 0.$((10 - i))"
    i=$((i + 1))
done
